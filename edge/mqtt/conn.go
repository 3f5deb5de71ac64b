package mqtt

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// endGrace bounds how long a closing connection waits for the Sink to complete the
// messages it is storing, so that their acknowledgements can still be written.
const endGrace = 10 * time.Second

// inbound is what the reader hands the owner: a decoded packet or the error that
// ended reading.
type inbound struct {
	h   packet.Header
	p   packet.Packet
	err error
}

// pending is a message handed to the Sink. Its fields other than err are the owner's.
type pending struct {
	msg   *Message
	qos   byte
	ack   packet.Ack // PUBACK or PUBREC to write once stored; unused for QoS 0
	done  bool       // completed and accounted; ack ready in the FIFO
	err   error      // set by complete
	retry bool       // waiting for room to be appended again
}

// QoS 2 states of a packet identifier (§4.3.3).
const (
	qos2Storing     uint8 = 1 // PUBLISH handed to the Sink, PUBREC not sent yet
	qos2AwaitingRel uint8 = 2 // stored and PUBREC sent; waiting for PUBREL
)

// conn is one client connection. The reader goroutine (read) only reads and decodes;
// the owner goroutine (serve) holds every other field and does all writing, except
// where marked.
type conn struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	bw  *bufio.Writer

	in         chan inbound  // reader → owner
	quit       chan struct{} // closed by the owner when it ends: the reader stops
	readerDone chan struct{} // closed by the reader
	done       chan struct{} // closed when serve has returned
	kicked     chan struct{} // capacity 1: another connection takes over the client id

	mu        sync.Mutex // guards completed, cmdWake and cmdDone
	completed []*pending
	cmdWake   bool          // the Commands watch fired (deliver.go)
	cmdDone   []cmdResult   // finished queue updates of commands (deliver.go)
	wake      chan struct{} // capacity 1: one of the above is set

	// Owner state.
	ctx         context.Context
	version     byte
	connected   bool
	client      Client
	source      string
	persistent  bool
	expiry      uint32 // MQTT 5 session expiry interval
	problemInfo bool   // MQTT 5 Request Problem Information
	maxOut      int    // MQTT 5 Maximum Packet Size of the client; 0: none
	will        *packet.Will
	fifo        []*pending // QoS 1 and 2 messages in PUBLISH order: acks go out in this order
	storing     int        // messages handed to the Sink and not completed
	qos2        map[uint16]uint8
	held        *packet.Publish // waiting for room before it is handed to the Sink
	heldAt      time.Time
	retries     []*pending
	timer       *time.Timer
	timerC      <-chan time.Time
	dirty       bool              // bw holds unflushed bytes
	scratch     []byte            // encoding buffer
	werr        error             // first write error
	aliases     map[uint16]string // MQTT 5 topic aliases of the client's PUBLISHes

	// Commands to the client (deliver.go).
	streams  map[string]*stream   // device id → the delivery of its queue
	out      map[uint16]*outbound // QoS 1 commands not acknowledged, by packet identifier
	nextPID  uint16
	sendMax  int // commands unacknowledged at most: Receive Maximum, Config.CommandInflight
	settling int // Delivered and DeadLetter calls not completed
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	return &conn{
		srv:        s,
		nc:         nc,
		log:        s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		bw:         bufio.NewWriterSize(nc, 4096),
		in:         make(chan inbound, 16),
		quit:       make(chan struct{}),
		readerDone: make(chan struct{}),
		done:       make(chan struct{}),
		kicked:     make(chan struct{}, 1),
		wake:       make(chan struct{}, 1),
		qos2:       make(map[uint16]uint8),
		streams:    make(map[string]*stream),
		out:        make(map[uint16]*outbound),
	}
}

// kick asks the connection to end because another one took over its client id. It is
// safe to call from any goroutine.
func (c *conn) kick() {
	select {
	case c.kicked <- struct{}{}:
	default:
	}
}

// keepAlive returns the keep-alive the server applies to a client that asked for ka
// seconds, and whether it differs from ka (MQTT 5: sent as Server Keep Alive).
func (s *Server) keepAlive(ka uint16) (time.Duration, bool) {
	d := time.Duration(ka) * time.Second
	if max := s.cfg.MaxKeepAlive; max > 0 && (ka == 0 || d > max) {
		return max.Truncate(time.Second), true
	}
	return d, false
}

// read is the reader goroutine: it reads packets until an error, which it hands over
// last. The first packet must arrive within the handshake timeout; later ones within
// 1.5 times the keep-alive (§3.1.2.10 in both versions).
func (c *conn) read() {
	defer close(c.readerDone)
	br := bufio.NewReaderSize(c.nc, 4096)
	var version byte
	wait := c.srv.cfg.HandshakeTimeout
	for {
		if wait > 0 {
			c.nc.SetReadDeadline(time.Now().Add(wait))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		h, body, err := packet.Read(br, c.srv.cfg.MaxPacketSize)
		var p packet.Packet
		if err == nil {
			if version == 0 && h.Type != packet.CONNECT {
				err = &packet.Error{Code: packet.ProtocolError, Msg: h.Type.String() + " before CONNECT"}
			} else {
				p, err = packet.Decode(h, body, version)
			}
			if cp, ok := p.(*packet.Connect); ok && version == 0 {
				version = cp.Version
				ka, _ := c.srv.keepAlive(cp.KeepAlive)
				wait = ka * 3 / 2
			}
		}
		select {
		case c.in <- inbound{h, p, err}:
		case <-c.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// readable reports whether the owner takes the next packet from the reader: not while
// a message waits for room, nor while ReceiveMaximum messages are being stored.
func (c *conn) readable() bool {
	return c.held == nil && c.storing < c.srv.cfg.ReceiveMaximum
}

// ending says how a connection ends.
type ending struct {
	code   packet.ReasonCode // MQTT 5 DISCONNECT reason to send; 0: none
	send   bool              // send a DISCONNECT (MQTT 5, after CONNACK)
	will   bool              // publish the Will
	reason string            // for the log
	err    error
}

// serve is the owner goroutine.
func (c *conn) serve(ctx context.Context) {
	defer close(c.done)
	c.ctx = ctx
	go c.read()
	defer func() {
		close(c.quit)
		c.nc.Close()
		<-c.readerDone
	}()
	for {
		var in <-chan inbound
		if c.readable() {
			in = c.in
		}
		var end *ending
		select {
		case ev := <-in:
			end = c.handle(ev)
		case <-c.wake:
			c.collect()
		case <-c.timerC:
			c.timerC = nil
			c.resume()
		case <-c.kicked:
			end = &ending{code: packet.SessionTakenOver, send: true, will: true, reason: "session taken over by a new connection"}
		case <-ctx.Done():
			end = &ending{code: packet.ServerShuttingDown, send: true, reason: "server shutting down"}
		}
		if end == nil {
			end = c.writeAcks()
		}
		if end == nil && c.connected {
			c.pumpCommands()
		}
		if end == nil && c.werr != nil {
			end = &ending{will: true, reason: "write failed", err: c.werr}
		}
		if end != nil {
			c.end(end)
			return
		}
		if c.dirty && len(c.wake) == 0 && (in == nil || len(c.in) == 0) {
			c.flush()
		}
	}
}

// handle acts on one packet from the reader, or on the error that ended reading.
func (c *conn) handle(ev inbound) *ending {
	if ev.err != nil {
		return c.readError(ev.err)
	}
	if !c.connected {
		if p, ok := ev.p.(*packet.Connect); ok {
			return c.connect(p)
		}
		return &ending{reason: "first packet is not CONNECT"} // the reader refuses these
	}
	switch p := ev.p.(type) {
	case *packet.Publish:
		return c.publish(p)
	case *packet.Ack:
		switch p.Kind {
		case packet.PUBREL:
			c.pubrel(p)
		case packet.PUBACK:
			c.puback(p)
		default:
			// PUBREC and PUBCOMP answer QoS 2 PUBLISHes, which the server never sends.
			return c.protocolError(packet.ProtocolError, p.Kind.String()+" for a QoS 2 message the server did not send")
		}
		return nil
	case *packet.Subscribe:
		c.subscribe(p)
		return nil
	case *packet.Unsubscribe:
		c.unsubscribe(p)
		return nil
	case *packet.Pingreq:
		c.write(&packet.Pingresp{})
		return nil
	case *packet.Disconnect:
		if c.version == packet.V5 && p.Props.Has(packet.PropSessionExpiry) {
			if c.expiry == 0 && p.Props.SessionExpiry != 0 {
				// 5.0 §3.14.2.2.2.
				return c.protocolError(packet.ProtocolError, "DISCONNECT sets a session expiry after CONNECT set none")
			}
			c.expiry = p.Props.SessionExpiry
			c.persistent = c.expiry > 0
		}
		return &ending{will: c.version == packet.V5 && p.Code == packet.DisconnectWithWill, reason: "client disconnected"}
	case *packet.Connect:
		return c.protocolError(packet.ProtocolError, "second CONNECT")
	case *packet.Auth:
		return c.protocolError(packet.ProtocolError, "AUTH without an authentication method")
	default:
		return c.protocolError(packet.ProtocolError, ev.h.Type.String()+" sent by a client")
	}
}

// protocolError ends the connection: MQTT 5 clients get a DISCONNECT with code, 3.1.1
// clients are closed (3.1.1 §4.8). The Will is published (§3.1.2.5).
func (c *conn) protocolError(code packet.ReasonCode, msg string) *ending {
	return &ending{code: code, send: true, will: true, reason: msg}
}

// readError turns the error that ended reading into an ending.
func (c *conn) readError(err error) *ending {
	var ne net.Error
	var pe *packet.Error
	switch {
	case errors.As(err, &pe):
		if !c.connected {
			c.srv.refused.Add(1)
			if pe.Code == packet.UnsupportedProtocolVersion {
				// 3.1.1 §3.1.2.2: CONNACK 0x01 and close; an MQTT 5 server answers an
				// unknown level the same way an older client understands.
				c.write(&packet.Connack{Code: packet.V3UnacceptableVersion})
				c.flush()
			}
			return &ending{reason: "bad CONNECT", err: err}
		}
		return &ending{code: pe.Code, send: true, will: true, reason: "bad packet", err: err}
	case errors.As(err, &ne) && ne.Timeout():
		if !c.connected {
			c.srv.refused.Add(1)
			return &ending{reason: "no CONNECT within the handshake timeout"}
		}
		return &ending{code: packet.KeepAliveTimeout, send: true, will: true, reason: "keep-alive timeout"}
	case errors.Is(err, io.EOF):
		return &ending{will: true, reason: "connection closed by the client without DISCONNECT"}
	}
	return &ending{will: true, reason: "read failed", err: err}
}

// write encodes p into the write buffer; the owner flushes it. It returns false when
// p was not sent because it exceeds the client's Maximum Packet Size.
func (c *conn) write(p packet.Packet) bool {
	if c.werr != nil {
		return true
	}
	if !c.dirty {
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		c.dirty = true
	}
	c.scratch = p.Append(c.scratch[:0], c.version)
	if _, connack := p.(*packet.Connack); c.maxOut > 0 && len(c.scratch) > c.maxOut && !connack {
		// 5.0 §3.1.2.11.4: leave out the Reason String and User Properties, or else the
		// packet, rather than exceed the client's Maximum Packet Size.
		switch p := p.(type) {
		case *packet.Disconnect:
			p.Props = packet.Properties{}
		case *packet.Suback:
			p.Props = packet.Properties{}
		case *packet.Ack:
			p.Props = packet.Properties{}
		}
		if c.scratch = p.Append(c.scratch[:0], c.version); len(c.scratch) > c.maxOut {
			c.log.Debug("mqtt packet not sent: larger than the client's maximum packet size", "type", p.Type(), "size", len(c.scratch), "max", c.maxOut)
			return false
		}
	}
	if _, err := c.bw.Write(c.scratch); err != nil {
		c.werr = err
	}
	return true
}

func (c *conn) flush() {
	if c.werr == nil {
		if err := c.bw.Flush(); err != nil {
			c.werr = err
		}
	}
	c.dirty = false
}

// arm makes the owner call resume after resumeInterval.
func (c *conn) arm() {
	if c.timerC != nil {
		return
	}
	if c.timer == nil {
		c.timer = time.NewTimer(resumeInterval)
	} else {
		c.timer.Reset(resumeInterval)
	}
	c.timerC = c.timer.C
}

// end finishes the connection: it stops reading, waits (up to endGrace) for the
// messages being stored so their acknowledgements go out, sends the MQTT 5 DISCONNECT,
// publishes the Will if the ending asks for it, and keeps the session if the client
// asked for one.
func (c *conn) end(e *ending) {
	c.nc.SetReadDeadline(time.Now()) // the reader stops; the socket stays open for writing
	deadline := time.NewTimer(endGrace)
	defer deadline.Stop()
	c.stopStreams()
	for (c.storing > len(c.retries) && c.werr == nil) || c.settling > 0 {
		c.flush()
		select {
		case <-c.wake:
			c.collect()
			if e2 := c.writeAcks(); e2 != nil {
				e = e2
			}
			continue
		case <-deadline.C:
		}
		break
	}
	if c.connected && e.send && c.version == packet.V5 && e.code != 0 {
		d := &packet.Disconnect{Code: e.code}
		if e.err != nil {
			d.Props.ReasonString = e.err.Error()
			d.Props.Mark(packet.PropReasonString)
		}
		c.write(d)
	}
	c.flush()
	if e.err != nil || e.code >= 0x80 && e.code != packet.ServerShuttingDown {
		c.srv.logGone.Warn(c.log, "mqtt client disconnected", "client", c.client.ID, "reason", e.reason, "code", byte(e.code), "err", e.err)
	} else {
		c.log.Debug("mqtt client gone", "client", c.client.ID, "reason", e.reason)
	}
	if !c.connected {
		return
	}
	if e.will && c.will != nil {
		c.publishWill()
	}
	var sess *session
	if c.persistent {
		sess = c.saveSession()
	}
	c.srv.release(c.client.ID, c, sess)
}

// saveSession returns the session state to keep for the client's next connection.
func (c *conn) saveSession() *session {
	sess := &session{awaitingRel: make(map[uint16]struct{})}
	for id, st := range c.qos2 {
		if st == qos2AwaitingRel {
			sess.awaitingRel[id] = struct{}{}
		}
	}
	for _, st := range c.streams {
		sess.subs = append(sess.subs, st.subs...)
		for seq, id := range st.inflight {
			sess.out = append(sess.out, savedOut{id: id, device: st.device, seq: seq})
		}
		for seq, id := range st.resend { // never resent: keep them for the next one
			sess.out = append(sess.out, savedOut{id: id, device: st.device, seq: seq})
		}
	}
	if c.version == packet.V5 && c.expiry != 0xFFFFFFFF {
		sess.expires = time.Now().Add(time.Duration(c.expiry) * time.Second)
	}
	return sess
}

// restoreSession takes up the subscriptions and the unacknowledged commands of a
// session; the commands go out again, with DUP, before any other (§4.4).
func (c *conn) restoreSession(sess *session) {
	for pid := range sess.awaitingRel {
		c.qos2[pid] = qos2AwaitingRel
	}
	if c.srv.commands == nil {
		return
	}
	for _, s := range sess.subs {
		c.attach(s)
	}
	for _, o := range sess.out {
		st := c.streams[o.device]
		if st == nil {
			continue // unsubscribed: the command stays queued for the next subscriber
		}
		st.resend[o.seq] = o.id
		c.out[o.id] = &outbound{s: st, seq: o.seq}
	}
}
