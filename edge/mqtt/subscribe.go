package mqtt

import (
	"strings"

	"github.com/shadowgw/shadowgw/edge/acl"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// Subscriptions: the only topics the server publishes are a device's commands. A
// client subscribes to them with one of these filters (§4.7: '#' matches the level
// it stands for and everything below):
//
//	command/<device-id>/#       topic command/<device-id>/<subject>
//	command///req/#             its own commands (Eclipse Hono's MQTT adapter);
//	                            topic command///req/<req-id>/<subject>
//	command//<device-id>/req/#  Hono's form for a gateway acting for a device;
//	                            topic command//<device-id>/req/<req-id>/<subject>
//
// A client's own device id is its user name, or its client identifier when it is
// anonymous; it may read the commands of another id as the [commands] rules say
// (acl.MayReadCommands, as for AMQP devices). <subject> is the command's AMQP
// subject (empty when it has none or it cannot be a topic level); <req-id> is its
// correlation-id as text, empty when it has none (a one-way command).

// maxStreams bounds the devices whose commands one connection receives (each has a
// watch on the queue): a client may not make the gateway watch every id it can name.
const maxStreams = 64

// sub is one accepted subscription.
type sub struct {
	filter string
	device string
	prefix string // the topic up to the req-id or subject
	hono   bool   // a <req-id>/ level follows the prefix
	qos    byte   // granted: 0 or 1
}

// parseCommandFilter returns the subscription a filter asks for, or ok false when
// it is no command filter. own is the client's own device id.
func parseCommandFilter(filter, own string) (s sub, ok bool) {
	s.filter = filter
	rest, found := strings.CutPrefix(filter, CommandTopic+"/")
	if !found {
		return s, false
	}
	if rest == "//req/#" { // command///req/#
		s.device, s.prefix, s.hono = own, CommandTopic+"///req/", true
		return s, own != ""
	}
	if id, found := strings.CutPrefix(rest, "/"); found { // command//<id>/req/#
		id, found = strings.CutSuffix(id, "/req/#")
		if !found || !deviceLevel(id) {
			return s, false
		}
		s.device, s.prefix, s.hono = id, CommandTopic+"//"+id+"/req/", true
		return s, true
	}
	id, found := strings.CutSuffix(rest, "/#") // command/<id>/#
	if !found || !deviceLevel(id) {
		return s, false
	}
	s.device, s.prefix = id, CommandTopic+"/"+id+"/"
	return s, true
}

// deviceLevel reports whether id can be a device id in a filter: one non-empty topic
// level without wildcards, of at most 1,024 bytes.
func deviceLevel(id string) bool {
	return id != "" && len(id) <= 1024 && !strings.Contains(id, "/") && topicLevel(id)
}

// subscribe handles SUBSCRIBE (§3.8): one SUBACK code per filter (§3.9.3).
func (c *conn) subscribe(p *packet.Subscribe) {
	codes := make([]packet.ReasonCode, len(p.Subs))
	reason := ""
	for i, rq := range p.Subs {
		code, why := c.addSub(rq)
		codes[i] = code
		if code >= 0x80 && reason == "" {
			reason = why
		}
	}
	ack := &packet.Suback{ID: p.ID, Codes: codes}
	if c.version != packet.V5 {
		for i, code := range codes {
			if code >= 0x80 {
				ack.Codes[i] = packet.V3SubscriptionFailure // 3.1.1 §3.9.3
			}
		}
	} else if reason != "" && c.problemInfo {
		ack.Props.ReasonString = reason
		ack.Props.Mark(packet.PropReasonString)
	}
	// The SUBACK goes out before the first command (§3.8.4: the server may start
	// publishing before it, but a client is entitled to see it first).
	c.write(ack)
}

// addSub accepts one subscription or says why not.
func (c *conn) addSub(rq packet.Subscription) (packet.ReasonCode, string) {
	if c.srv.commands == nil {
		return packet.UnspecifiedError, "the gateway has no commands for devices"
	}
	if strings.HasPrefix(rq.Filter, "$share/") {
		return packet.SharedSubNotSupported, "shared subscriptions are not supported"
	}
	s, ok := parseCommandFilter(rq.Filter, c.ownID())
	if !ok {
		return packet.TopicFilterInvalid, "the gateway publishes only commands: subscribe to command/<device-id>/# or command///req/#"
	}
	if !acl.MayReadCommands(c.srv.cfg.CommandAccess, c.client.User, s.device) {
		c.srv.logDenied.Warn(c.log, "mqtt subscription refused: another device's commands", "client", c.client.ID, "user", c.client.User, "device", s.device)
		return packet.NotAuthorized, "not authorized to receive the commands of " + s.device
	}
	if c.streams[s.device] == nil && len(c.streams) >= maxStreams {
		return packet.QuotaExceeded, "too many devices' commands on one connection"
	}
	s.qos = min(rq.QoS, 1) // commands are sent with QoS 1 at most
	c.attach(s)
	c.log.Debug("mqtt subscription", "client", c.client.ID, "filter", s.filter, "device", s.device, "qos", s.qos)
	return packet.ReasonCode(s.qos), ""
}

// ownID is the device id of the client's own commands.
func (c *conn) ownID() string {
	if c.client.User != "" {
		return c.client.User
	}
	return c.client.ID
}

// unsubscribe handles UNSUBSCRIBE (§3.10). Commands already sent with QoS 1 stay in
// flight until acknowledged (§3.10.4).
func (c *conn) unsubscribe(p *packet.Unsubscribe) {
	codes := make([]packet.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		codes[i] = packet.NoSubscriptionExisted
		if c.detach(f) {
			codes[i] = packet.Success
		}
	}
	c.write(&packet.Unsuback{ID: p.ID, Codes: codes})
}
