package mqtt

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// connect handles CONNECT (§3.1): authentication, the client identifier, the session
// and the Will, then CONNACK (§3.2).
func (c *conn) connect(p *packet.Connect) *ending {
	c.version = p.Version
	refuse := func(code packet.ReasonCode, why string) *ending {
		c.srv.refused.Add(1)
		c.srv.logRefused.Warn(c.log, "mqtt client refused", "reason", why, "client", p.ClientID, "user", p.User, "code", byte(code))
		c.write(&packet.Connack{Code: c.connackCode(code)})
		return &ending{reason: why}
	}
	if p.Props.Has(packet.PropAuthMethod) {
		return refuse(packet.BadAuthenticationMethod, "enhanced authentication is not supported")
	}
	user := ""
	switch {
	case p.HasUser:
		hash, ok := c.srv.currentAccess().users[p.User]
		if ok {
			ok, _ = credential.Verify(hash, string(p.Password))
		}
		if !ok {
			return refuse(packet.BadUserNameOrPassword, "bad user name or password")
		}
		user = p.User
	case p.HasPassword:
		return refuse(packet.BadUserNameOrPassword, "password without a user name")
	case !c.srv.anonymousFrom(c.nc.RemoteAddr()):
		return refuse(packet.NotAuthorized, "anonymous clients are not allowed from this address")
	}
	id, assigned := p.ClientID, false
	if id == "" {
		if p.Version == packet.V311 && !p.CleanStart {
			// 3.1.1 §3.1.3.1: a zero-byte identifier needs CleanSession 1.
			return refuse(packet.ClientIDNotValid, "empty client identifier without clean session")
		}
		var b [12]byte
		rand.Read(b[:])
		id, assigned = "auto-"+hex.EncodeToString(b[:]), true
	}
	if p.Will != nil && !c.srv.mayPublish(user, p.Will.Topic) {
		return refuse(packet.NotAuthorized, "will topic "+p.Will.Topic+" not allowed")
	}

	c.client = Client{ID: id, User: user, Version: p.Version}
	c.source = user
	if user == "" {
		c.source = id
	}
	if p.Version == packet.V5 {
		c.expiry = p.Props.SessionExpiry
		c.persistent = c.expiry > 0
		c.problemInfo = !p.Props.Has(packet.PropRequestProblemInfo) || p.Props.RequestProblemInfo == 1
		if p.Props.Has(packet.PropMaximumPacketSize) {
			c.maxOut = int(min(p.Props.MaximumPacketSize, 1<<30))
		}
	} else {
		c.persistent = !p.CleanStart
	}
	sess := c.srv.claim(c.ctx, id, c)
	if p.CleanStart {
		sess = nil
	}
	c.will = p.Will
	c.connected = true
	c.sendMax = c.srv.cfg.CommandInflight
	if p.Version == packet.V5 && p.Props.Has(packet.PropReceiveMaximum) {
		c.sendMax = min(c.sendMax, int(p.Props.ReceiveMaximum))
	}

	ack := &packet.Connack{SessionPresent: sess != nil}
	if p.Version == packet.V5 {
		pr := &ack.Props
		pr.ReceiveMaximum = uint16(c.srv.cfg.ReceiveMaximum)
		pr.Mark(packet.PropReceiveMaximum)
		pr.MaximumPacketSize = uint32(c.srv.cfg.MaxPacketSize)
		pr.Mark(packet.PropMaximumPacketSize)
		pr.SharedSubAvail = 0
		pr.Mark(packet.PropSharedSubAvail)
		pr.SubIDAvail = 0
		pr.Mark(packet.PropSubIDAvail)
		if assigned {
			pr.AssignedClientID = id
			pr.Mark(packet.PropAssignedClientID)
		}
		if c.srv.cfg.TopicAliasMaximum > 0 {
			pr.TopicAliasMaximum = uint16(c.srv.cfg.TopicAliasMaximum)
			pr.Mark(packet.PropTopicAliasMaximum)
		}
		if ka, changed := c.srv.keepAlive(p.KeepAlive); changed {
			pr.ServerKeepAlive = uint16(ka.Seconds())
			pr.Mark(packet.PropServerKeepAlive)
		}
	}
	c.write(ack)
	if sess != nil {
		c.restoreSession(sess) // after the CONNACK: resent commands follow it
	}
	c.log.Debug("mqtt client connected", "client", id, "user", user, "version", p.Version,
		"keep_alive", p.KeepAlive, "persistent", c.persistent, "session_present", ack.SessionPresent)
	return nil
}

// connackCode returns code as the connection's version writes it: MQTT 5 reason codes
// map to 3.1.1 return codes (3.1.1 §3.2.2.3).
func (c *conn) connackCode(code packet.ReasonCode) packet.ReasonCode {
	if c.version == packet.V5 || code == packet.Success {
		return code
	}
	switch code {
	case packet.UnsupportedProtocolVersion:
		return packet.V3UnacceptableVersion
	case packet.ClientIDNotValid:
		return packet.V3IdentifierRejected
	case packet.BadUserNameOrPassword:
		return packet.V3BadUserNameOrPassword
	case packet.ServerUnavailable, packet.ServerBusy:
		return packet.V3ServerUnavailable
	}
	return packet.V3NotAuthorized
}
