package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/edge/frame"
)

// SASL mechanisms the gateway offers (RFC 4616 PLAIN, RFC 4505 ANONYMOUS).
const (
	mechPlain     codec.Symbol = "PLAIN"
	mechAnonymous codec.Symbol = "ANONYMOUS"
)

var errAuth = errors.New("authentication failed")

// handshake runs everything before the connection is open: the protocol header
// exchange (§2.2), the optional SASL layer (§5.3) and the exchange of open frames
// (§2.4.1), all within the handshake time-out.
func (c *conn) handshake() error {
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	defer c.nc.SetDeadline(time.Time{})

	hdr, err := c.readProto()
	if err != nil {
		return err
	}
	switch hdr {
	case frame.ProtoSASL:
		if err := c.sasl(); err != nil {
			return err
		}
		if hdr, err = c.readProto(); err != nil {
			return err
		}
		if hdr != frame.ProtoAMQP {
			c.rejectProto(frame.ProtoAMQP)
			return fmt.Errorf("protocol header %q after SASL, want AMQP 0 1.0.0", hdr[:])
		}
	case frame.ProtoAMQP:
		if !c.srv.anonymousFrom(c.nc.RemoteAddr()) {
			// §5.1: a server that requires SASL answers with the SASL header and closes.
			c.srv.refused.Add(1)
			c.rejectProto(frame.ProtoSASL)
			c.srv.logRefused.Warn(c.log, "device refused: connection without SASL, and anonymous access is not allowed from its address")
			return errAuth
		}
	default:
		// §2.2: answer an unsupported header with one we support, then close.
		c.rejectProto(frame.ProtoSASL)
		return fmt.Errorf("unsupported protocol header %q", hdr[:])
	}
	c.bw.Write(frame.ProtoAMQP[:])
	if err := c.flush(); err != nil {
		return err
	}

	h, body, err := readFrame(c.br, c.maxIn)
	if err != nil {
		return c.handshakeReadError(err)
	}
	b, _, err := frame.Decode(h.Type, body)
	open, ok := b.(*frame.Open)
	if err != nil || !ok || h.Type != frame.TypeAMQP {
		if err == nil {
			err = fmt.Errorf("first frame is %T, want open", b)
		}
		return c.failOpen(frame.Errorf(frame.ErrDecode, err.Error()))
	}
	if open.MaxFrameSize < frame.MinMaxFrameSize {
		return c.failOpen(frame.Errorf(frame.ErrInvalidField,
			fmt.Sprintf("max-frame-size %d is below the minimum of %d", open.MaxFrameSize, frame.MinMaxFrameSize)))
	}
	c.maxOut = open.MaxFrameSize
	if open.IdleTimeout > 0 {
		c.heartbeat = max(time.Duration(open.IdleTimeout)*time.Millisecond, 100*time.Millisecond)
	}
	if c.source == "" {
		c.source = open.ContainerID
	}
	c.log = c.log.With("container", open.ContainerID)
	c.sendOpen()
	return c.flush()
}

func (c *conn) sendOpen() {
	idle := uint32(0)
	if c.srv.cfg.IdleTimeout > 0 {
		idle = uint32(c.srv.cfg.IdleTimeout / time.Millisecond)
	}
	c.send(0, &frame.Open{
		ContainerID:  c.srv.cfg.ContainerID,
		MaxFrameSize: c.maxIn,
		ChannelMax:   c.srv.cfg.channelMax(),
		IdleTimeout:  idle,
		// A sender with a null target sends each message to its to (relay.go).
		OfferedCapabilities: []codec.Symbol{AnonymousRelay},
	}, nil)
}

// failOpen answers a bad first frame with an open and a close carrying the error (§2.4.1:
// a close must follow an open).
func (c *conn) failOpen(e *frame.Error) error {
	c.sendOpen()
	c.sendClose(e)
	return e
}

func (c *conn) handshakeReadError(err error) error {
	if errors.Is(err, frame.ErrFraming) {
		c.sendOpen()
		c.sendClose(frame.Errorf(frame.ErrFramingError, err.Error()))
	}
	return err
}

func (c *conn) readProto() ([8]byte, error) {
	var hdr [8]byte
	_, err := io.ReadFull(c.br, hdr[:])
	return hdr, err
}

func (c *conn) rejectProto(p [8]byte) {
	c.bw.Write(p[:])
	c.flush()
}

// sasl runs the server side of the SASL exchange (§5.3.2) after the client's SASL header.
func (c *conn) sasl() error {
	c.bw.Write(frame.ProtoSASL[:])
	var mechs []codec.Symbol
	if len(c.srv.currentAccess().users) > 0 {
		mechs = append(mechs, mechPlain)
	}
	if c.srv.anonymousFrom(c.nc.RemoteAddr()) {
		mechs = append(mechs, mechAnonymous)
	}
	c.sendSASL(&frame.SASLMechanisms{Mechanisms: mechs})
	if err := c.flush(); err != nil {
		return err
	}
	h, body, err := readFrame(c.br, c.maxIn)
	if err != nil {
		return err
	}
	if h.Type != frame.TypeSASL {
		return fmt.Errorf("frame type %d during SASL", h.Type)
	}
	b, _, err := frame.Decode(frame.TypeSASL, body)
	if err != nil {
		return err
	}
	init, ok := b.(*frame.SASLInit)
	if !ok {
		return fmt.Errorf("SASL frame %T, want sasl-init", b)
	}
	user, reason := c.authenticate(init)
	if reason != "" {
		c.sendSASL(&frame.SASLOutcome{Outcome: frame.SASLAuth})
		c.flush()
		c.srv.refused.Add(1)
		// One line per refused device, naming it and where it came from; never the
		// password. A device retrying in a loop is rate-limited.
		host, _, _ := net.SplitHostPort(c.remote)
		c.srv.logRefused.WarnKey(user+"@"+host, c.log, "device authentication failed", "mechanism", string(init.Mechanism), "user", peerText(user), "reason", reason)
		return errAuth
	}
	c.user, c.source = user, user
	c.sendSASL(&frame.SASLOutcome{Outcome: frame.SASLOK})
	return c.flush()
}

// authenticate checks a sasl-init and returns the user, and a reason when it fails.
func (c *conn) authenticate(init *frame.SASLInit) (user, reason string) {
	switch init.Mechanism {
	case mechAnonymous:
		if !c.srv.anonymousFrom(c.nc.RemoteAddr()) {
			return "", "anonymous access is not allowed from this address"
		}
		return "", ""
	case mechPlain:
		// RFC 4616: [authzid] NUL authcid NUL passwd.
		parts := bytes.Split(init.InitialResponse, []byte{0})
		if len(parts) != 3 {
			return "", "malformed PLAIN response"
		}
		user = string(parts[1])
		if len(parts[0]) > 0 && string(parts[0]) != user {
			return user, "authorization identity differs from the user"
		}
		hash, ok := c.srv.currentAccess().users[user]
		if !ok {
			return user, "unknown user"
		}
		good, err := credential.Verify(hash, string(parts[2]))
		if err != nil || !good {
			return user, "wrong password"
		}
		return user, ""
	}
	return "", fmt.Sprintf("mechanism %q not offered", init.Mechanism)
}

func (c *conn) sendSASL(b frame.Body) {
	c.wbuf = frame.Append(c.wbuf[:0], frame.TypeSASL, 0, b, nil)
	c.bw.Write(c.wbuf)
}
