package mqtt

import (
	"fmt"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// Delivery of commands to a subscribed client. Everything here runs on the
// connection's owner goroutine, except the Commands callbacks, which only queue
// their news under c.mu and wake the owner.
//
// A command is published with QoS 1 (or 0 when the subscription was granted 0), in
// queue order, while fewer than sendMax are unacknowledged (the client's Receive
// Maximum, 5.0 §3.3.4 and §4.9, capped by Config.CommandInflight). Its PUBACK
// decides: a success code deletes it from the queue; an MQTT 5 code of 0x80 or more
// moves it to the dead letters with that code. A command not acknowledged when the
// connection ends stays queued: a client that comes back with its session gets it
// again with DUP set and the same packet identifier (§4.4), any other subscriber
// gets it as a new PUBLISH. QoS 0 is at most once: the command is deleted as soon
// as its PUBLISH is written.

// stream is the delivery of one device's queue to this connection.
type stream struct {
	device   string
	subs     []sub             // the client's subscriptions to it, in order; none: finishing
	after    uint64            // the last seq read
	ready    bool              // something may be readable
	inflight map[uint64]uint16 // sent with QoS 1, not acknowledged: seq → packet id
	resend   map[uint64]uint16 // from the session, to send again with DUP: seq → packet id
	gone     map[uint64]bool   // acknowledged (or sent with QoS 0), the queue not yet updated
	stop     func()            // ends the Commands watch
}

// outbound is a command sent with QoS 1 and not acknowledged.
type outbound struct {
	s   *stream
	seq uint64
}

// cmdResult is a finished Delivered or DeadLetter, for the owner.
type cmdResult struct {
	s   *stream
	seq uint64
	err error
}

// attach adds s to the stream of its device, starting the stream if needed. A
// subscription with the same filter is replaced (§3.8.4).
func (c *conn) attach(s sub) {
	c.detach(s.filter)
	st := c.streams[s.device]
	if st == nil {
		st = &stream{device: s.device, inflight: map[uint64]uint16{}, resend: map[uint64]uint16{}, gone: map[uint64]bool{}}
		st.stop = c.srv.commands.Watch(s.device, c.commandsWake)
		c.streams[s.device] = st
	}
	st.subs = append(st.subs, s)
	st.ready = true
}

// detach removes the subscription with filter, reporting whether there was one.
func (c *conn) detach(filter string) bool {
	for _, st := range c.streams {
		for i := range st.subs {
			if st.subs[i].filter == filter {
				st.subs = append(st.subs[:i], st.subs[i+1:]...)
				if len(st.subs) == 0 {
					// Not resent yet: they stay queued for the next subscriber.
					for _, id := range st.resend {
						delete(c.out, id)
					}
					clear(st.resend)
				}
				c.tidy(st)
				return true
			}
		}
	}
	return false
}

// tidy ends a stream that has no subscription and nothing in flight.
func (c *conn) tidy(st *stream) {
	if len(st.subs) == 0 && len(st.inflight) == 0 && len(st.gone) == 0 && len(st.resend) == 0 {
		st.unwatch()
		delete(c.streams, st.device)
	}
}

// form returns the QoS and the topic a command is published with: the highest
// granted QoS of the stream's subscriptions (§3.3.4), the topic of the first one.
func (st *stream) form(ac *amqpCommand) (byte, string) {
	var qos byte
	for _, s := range st.subs {
		qos = max(qos, s.qos)
	}
	s := st.subs[0]
	subject := ac.subject
	if !topicLevel(subject) || len(subject) > 60000 { // the topic too must fit 65,535 bytes
		subject = ""
	}
	if !s.hono {
		return qos, s.prefix + subject
	}
	req := ""
	if ac.hasCorr && deviceLevel(string(ac.correlation)) { // one level: no "/"
		req = string(ac.correlation)
	}
	return qos, s.prefix + req + "/" + subject
}

// commandsWake is the Commands watch's callback, from any goroutine.
func (c *conn) commandsWake() {
	c.mu.Lock()
	c.cmdWake = true
	c.mu.Unlock()
	c.signal()
}

// signal wakes the owner.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// room is how many more commands may be sent now: sendMax unacknowledged, and at
// most 4 × sendMax sent and not yet deleted from the queue (acknowledged ones wait
// for the store's commit without holding up the next).
func (c *conn) room() int {
	return min(c.sendMax-len(c.out), 4*c.sendMax-len(c.out)-c.settling)
}

// pumpCommands sends what the streams have, as far as room allows. It waits until a
// quarter of the window is free, so that one read of the queue sends several
// commands rather than one read per PUBACK.
func (c *conn) pumpCommands() {
	for _, st := range c.streams {
		if len(st.resend) > 0 && len(st.subs) > 0 && c.werr == nil {
			c.resendSession(st) // already counted in the window
		}
	}
	if r := c.room(); r <= 0 || r < c.sendMax/4 && len(c.out) > 0 {
		return
	}
	for _, st := range c.streams {
		if st.ready && len(st.subs) > 0 && c.werr == nil {
			c.pump(st)
		}
	}
}

// pump sends st's commands in order until the queue or the room is exhausted.
func (c *conn) pump(st *stream) {
	for c.room() > 0 && c.werr == nil {
		want := c.room() + len(st.inflight) + len(st.gone)
		cmds, err := c.srv.commands.Read(st.device, st.after, want)
		if err != nil {
			c.srv.logNotStored.Warn(c.log, "commands could not be read", "device", st.device, "err", err)
			st.ready = false
			return
		}
		for i := range cmds {
			cmd := &cmds[i]
			if _, ok := st.inflight[cmd.Seq]; ok || st.gone[cmd.Seq] {
				st.after = cmd.Seq
				continue
			}
			if c.room() <= 0 {
				return // still ready: more once acknowledgements come
			}
			c.send(st, cmd, 0, false)
			st.after = cmd.Seq
		}
		if len(cmds) < want {
			st.ready = false // until the watch fires
			return
		}
	}
}

// resendSession sends again, with DUP and their packet identifiers, the commands that
// were unacknowledged when the session's previous connection ended (§4.4); those no
// longer queued (expired, deleted) are forgotten.
func (c *conn) resendSession(st *stream) {
	want := len(st.resend) + len(st.inflight) + len(st.gone)
	cmds, err := c.srv.commands.Read(st.device, 0, want)
	if err != nil {
		c.srv.logNotStored.Warn(c.log, "commands could not be read", "device", st.device, "err", err)
		return
	}
	for _, id := range st.resend {
		delete(c.out, id)
	}
	for i := range cmds {
		if id, ok := st.resend[cmds[i].Seq]; ok {
			delete(st.resend, cmds[i].Seq)
			c.send(st, &cmds[i], id, true)
			c.srv.cmdResent.Add(1)
		}
	}
	clear(st.resend)
	st.after = 0 // the rest in order; what is in flight is skipped
}

// send publishes cmd on st; id is the packet identifier to reuse (0: a new one).
func (c *conn) send(st *stream, cmd *Command, id uint16, dup bool) {
	now := time.Now()
	if !cmd.Expires.IsZero() && !now.Before(cmd.Expires) {
		return // the queue drops it and counts it as expired
	}
	ac, err := parseCommand(cmd.Payload)
	if err != nil {
		c.srv.logNotStored.Warn(c.log, "command dead-lettered: no MQTT form", "device", st.device, "err", err)
		c.settle(st, cmd.Seq, false, err.Error())
		return
	}
	qos, topic := st.form(&ac)
	p := commandPublish(cmd, &ac, topic, qos, c.version, now)
	if qos == 1 {
		if id == 0 {
			id = c.newPacketID()
		}
		p.ID, p.Dup = id, dup
		c.out[id] = &outbound{s: st, seq: cmd.Seq}
		st.inflight[cmd.Seq] = id
	}
	if !c.write(p) {
		if qos == 1 {
			delete(c.out, id)
			delete(st.inflight, cmd.Seq)
		}
		// 5.0 §3.1.2.11.4: a packet over the client's Maximum Packet Size is not sent.
		c.settle(st, cmd.Seq, false, fmt.Sprintf("larger than the client's maximum packet size, %d bytes", c.maxOut))
		return
	}
	c.srv.cmdSent.Add(1)
	if qos == 0 {
		c.settle(st, cmd.Seq, true, "")
	}
}

// newPacketID returns a packet identifier no unacknowledged command uses (§2.2.1).
func (c *conn) newPacketID() uint16 {
	for {
		c.nextPID++
		if c.nextPID == 0 {
			continue
		}
		if _, used := c.out[c.nextPID]; !used {
			return c.nextPID
		}
	}
}

// puback handles the client's PUBACK of a command (§3.4).
func (c *conn) puback(a *packet.Ack) {
	o := c.out[a.ID]
	if o == nil {
		c.log.Debug("mqtt PUBACK for no command in flight", "client", c.client.ID, "id", a.ID)
		return
	}
	delete(c.out, a.ID)
	delete(o.s.inflight, o.seq)
	delete(o.s.resend, o.seq)
	if a.Code >= 0x80 {
		reason := fmt.Sprintf("PUBACK reason 0x%02x", byte(a.Code))
		if a.Props.ReasonString != "" {
			reason += ": " + a.Props.ReasonString
		}
		c.settle(o.s, o.seq, false, reason)
		return
	}
	c.settle(o.s, o.seq, true, "")
}

// settle deletes (delivered) or dead-letters the command seq of st.
func (c *conn) settle(st *stream, seq uint64, delivered bool, reason string) {
	st.gone[seq] = true
	c.settling++
	done := func(err error) {
		c.mu.Lock()
		c.cmdDone = append(c.cmdDone, cmdResult{s: st, seq: seq, err: err})
		c.mu.Unlock()
		c.signal()
	}
	if delivered {
		c.srv.cmdDelivered.Add(1)
		c.srv.commands.Delivered(st.device, seq, done)
		return
	}
	c.srv.cmdDead.Add(1)
	c.srv.commands.DeadLetter(st.device, seq, "MQTT client "+c.client.ID+": "+reason, done)
}

// collectCommands applies the watch's wake-ups and the finished queue updates.
func (c *conn) collectCommands(wake bool, done []cmdResult) {
	if wake {
		for _, st := range c.streams {
			st.ready = true
		}
	}
	for _, r := range done {
		c.settling--
		delete(r.s.gone, r.seq)
		if r.err != nil {
			// Still queued: it goes out again, at least once.
			c.srv.logNotStored.Warn(c.log, "a command's outcome could not be stored; it will be sent again", "device", r.s.device, "err", r.err)
			r.s.after, r.s.ready = 0, true
		}
		if c.streams[r.s.device] == r.s {
			c.tidy(r.s)
		}
	}
}

// unwatch ends st's Commands watch, once.
func (st *stream) unwatch() {
	if st.stop != nil {
		st.stop()
		st.stop = nil
	}
}

// stopStreams ends every stream's watch; the connection is ending.
func (c *conn) stopStreams() {
	for _, st := range c.streams {
		st.unwatch()
	}
}
