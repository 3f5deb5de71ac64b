package edge

import (
	"fmt"
	"strings"

	"github.com/shadowgw/shadowgw/edge/acl"
	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/edge/message"
)

// Commands is where the gateway's sending links take the messages queued for devices
// (commands, configuration, replies from the cloud). The store behind it is AMQP-free;
// cmd/shadowgw adapts it.
type Commands interface {
	// Watch calls wake, from any goroutine and without blocking for long, whenever
	// something new may be readable for device, until stop is called. stop waits until
	// wake is no longer called.
	Watch(device string, wake func()) (stop func())
	// Read returns up to max queued commands of device with a seq above after, in order.
	Read(device string, after uint64, max int) ([]Command, error)
	// Settle records the device's outcome of the command seq and calls done (from any
	// goroutine, never blocking) once it is durable.
	Settle(device string, seq uint64, o Outcome, done func(error))
}

// Command is one queued command: the store's seq and the AMQP message as the cloud sent it.
type Command struct {
	Seq     uint64
	Payload []byte
}

// OutcomeKind is what becomes of a command after its device's outcome.
type OutcomeKind uint8

const (
	// Delivered: the device accepted it (§3.4.2); it leaves the queue.
	Delivered OutcomeKind = iota + 1
	// DeadLetter: the device rejected it (§3.4.3) or said undeliverable-here (§3.4.5).
	DeadLetter
	// Rewrite: modified with delivery-failed (§3.4.5): Payload replaces the queued
	// message (its header delivery-count one higher), which is sent again.
	Rewrite
)

// Outcome is a device's verdict on a command.
type Outcome struct {
	Kind    OutcomeKind
	Reason  string // DeadLetter: the device's error
	Payload []byte // Rewrite
}

// CommandSource is the source address of a device's command receiver: "command" for
// the authenticated device's own queue, or "command/<device-id>" (Eclipse Hono's AMQP
// adapter addresses).
const CommandSource = "command"

// sender is the sending side of a link: the gateway sends a device its commands
// (§2.6.7 flow control, §2.6.12 settlement). It is part of its link, owned by the
// connection's owner goroutine.
type sender struct {
	device   string
	ready    bool // something may be readable: read before the link next waits
	rescan   bool // read from the start of the queue again (a command came back)
	after    uint64
	inflight map[uint64]bool // sent, outcome not yet known
	gone     map[uint64]bool // settled by the device, store not yet done
	drain    bool            // the device asked to drain (§2.6.7)
	blocked  bool            // the link it took over from has not let go yet (send_owner.go)
	stopWake func()
	// direct is the link's upstream side when the device's commands take a direct
	// route (send_direct.go); nil: they come from the store's queue. Sending and
	// settling are the same for both sources; only reading and the outcome differ.
	direct DirectCommandLink
}

// read returns up to max of the source's messages with a seq above after.
func (sd *sender) read(c *conn, after uint64, max int) ([]Command, error) {
	if sd.direct != nil {
		return sd.direct.Read(after, max), nil
	}
	return c.srv.commands.Read(sd.device, after, max)
}

// outDelivery is a delivery the gateway sent and the device has not settled.
type outDelivery struct {
	link    *link
	seq     uint64
	payload []byte
}

// outgoing is the session's sending state (§2.5.6, §2.6.12).
type outgoing struct {
	nextDeliveryID uint32
	unsettled      map[uint32]outDelivery
}

// cmdSettled is a finished store operation for a command, waiting for the owner.
type cmdSettled struct {
	link  *link
	seq   uint64
	again bool // send the command again (rewritten)
}

// urlPath returns the path of an address written as a URL, amqp[s]://host[:port]/PATH,
// and any other address as it is. An address is opaque to AMQP (§3.5.3 address-string),
// but some stacks name the source by the URL they connected to (uAMQP-C puts its whole
// URL, less the port, in the source); the host named is this gateway, so the path is
// the address meant.
func urlPath(addr string) string {
	rest, ok := strings.CutPrefix(addr, "amqps://")
	if !ok {
		if rest, ok = strings.CutPrefix(addr, "amqp://"); !ok {
			return addr
		}
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i+1:]
	}
	return addr
}

// commandDevice returns the device whose queue a receiver attaching with source
// address addr reads, or an error for the device.
func (c *conn) commandDevice(addr string) (string, *frame.Error) {
	id, ok := strings.CutPrefix(urlPath(addr), CommandSource)
	switch {
	case !ok || (id != "" && id[0] != '/'):
		return "", frame.Errorf(frame.ErrNotFound,
			fmt.Sprintf("the gateway sends only from %q or %q/<device-id>, not %q", CommandSource, CommandSource, addr))
	case id == "":
		if c.user == "" {
			return "", frame.Errorf(frame.ErrUnauthorizedAccess,
				"an anonymous device names its id: attach to command/<device-id>")
		}
		return c.user, nil
	}
	id = id[1:]
	if id == "" {
		return "", frame.Errorf(frame.ErrNotFound, "an empty device id")
	}
	if !acl.MayReadCommands(c.srv.cfg.CommandAccess, c.user, id) {
		return "", frame.Errorf(frame.ErrUnauthorizedAccess,
			fmt.Sprintf("device %q may not receive the commands of %q", c.source, id))
	}
	return id, nil
}

// attachSender attaches a link on which the device receives its commands (§2.6.3).
func (s *session) attachSender(a *frame.Attach) error {
	c := s.c
	if c.srv.commands == nil {
		return s.refuse(a, frame.Errorf(frame.ErrNotImplemented, "the gateway has no commands for devices"))
	}
	dev, e := c.commandDevice(a.SourceAddress)
	if e != nil {
		return s.refuse(a, e)
	}
	l := &link{
		name:    a.Name,
		handle:  a.Handle,
		role:    frame.RoleSender,
		address: a.SourceAddress,
		sender: &sender{
			device:   dev,
			ready:    true,
			inflight: make(map[uint64]bool),
			gone:     make(map[uint64]bool),
		},
	}
	s.links[a.Handle] = l
	if s.out.unsettled == nil {
		s.out.unsettled = make(map[uint32]outDelivery)
	}
	c.send(s.channel, &frame.Attach{
		Name:   a.Name,
		Handle: a.Handle,
		Role:   frame.RoleSender,
		// §2.7.3: the sender's snd-settle-mode is the mode in use. Commands are always
		// sent unsettled, also to a device that asked for settled: a pre-settled
		// command lost on the way would be gone, and the queue keeps each until its
		// device's outcome.
		SndSettleMode:    frame.SndUnsettled,
		RcvSettleMode:    a.RcvSettleMode,
		Source:           a.Source,
		Target:           a.Target,
		HasDeliveryCount: true, // initial-delivery-count 0
	}, nil)
	oc, old := c.srv.claimCommands(dev, c, l)
	if old != nil {
		l.sender.blocked = true
		c.steal(oc, old, dev)
	}
	if c.srv.directCmds != nil {
		l.sender.direct = c.srv.directCmds.Open(dev, c.commandsWake)
	}
	if l.sender.direct != nil {
		c.log.Info("command receiver attached", "channel", s.channel, "handle", a.Handle, "device", dev, "direct", true)
		l.sender.stopWake = l.sender.direct.Close
	} else {
		c.log.Info("command receiver attached", "channel", s.channel, "handle", a.Handle, "device", dev)
		l.sender.stopWake = c.srv.commands.Watch(dev, c.commandsWake)
	}
	if old == nil && c.srv.onCommandReceiver != nil { // presence: up, unless it was already
		c.srv.onCommandReceiver(dev, true)
	}
	return nil
}

// commandsWake is called by the Commands source, from any goroutine.
func (c *conn) commandsWake() {
	c.mu.Lock()
	c.cmdWake = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// commandSettled is called when the store finished a command's outcome.
func (c *conn) commandSettled(cs cmdSettled) {
	c.mu.Lock()
	c.cmdDone = append(c.cmdDone, cs)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// drainCommands applies what commandsWake and commandSettled queued; owner only.
func (c *conn) drainCommands() {
	c.drainSteals()
	c.mu.Lock()
	wake, done := c.cmdWake, c.cmdDone
	c.cmdWake, c.cmdDone = false, nil
	c.mu.Unlock()
	if wake {
		for _, s := range c.sessions {
			for _, l := range s.links {
				if l.sender != nil {
					l.sender.ready = true
				}
			}
		}
	}
	for _, cs := range done {
		sd := cs.link.sender
		delete(sd.gone, cs.seq)
		if cs.again {
			sd.rescan, sd.ready = true, true
		}
	}
}

// closeSender stops a sending link's watch; its unsettled commands stay queued and are
// sent again to the next receiver of the device (at-least-once). A direct link's are
// released upstream, where the cloud keeps them.
//
// Every way a link ends passes here, so a receiving link to a direct target lets go
// of the target here too (see DirectReleaser).
func (s *session) closeSender(l *link) {
	l.releaseDirect()
	if l.sender == nil || l.sender.stopWake == nil {
		return
	}
	l.sender.stopWake()
	l.sender.stopWake = nil
	if l.sender.direct != nil {
		s.c.srv.dcInFlight.Add(-int64(len(l.sender.inflight)))
		s.c.srv.dcReleased.Add(uint64(len(l.sender.inflight)))
		clear(l.sender.inflight)
	}
	for id, od := range s.out.unsettled {
		if od.link == l {
			delete(s.out.unsettled, id)
		}
	}
	// Presence: gone only when no other link took over.
	if s.c.srv.letGo(l.sender.device, l) && s.c.srv.onCommandReceiver != nil {
		s.c.srv.onCommandReceiver(l.sender.device, false)
	}
}

// senderFlow applies a device's flow on a sending link (§2.6.7): link-credit(snd) =
// delivery-count(rcv) + link-credit(rcv) - delivery-count(snd).
func (s *session) senderFlow(l *link, b *frame.Flow) {
	if b.HasLinkCredit {
		dc := l.deliveryCount
		if b.HasDeliveryCount {
			dc = b.DeliveryCount
		}
		l.credit = dc + b.LinkCredit - l.deliveryCount
		if l.credit > 1<<31 { // the device's view is behind ours: no credit
			l.credit = 0
		}
	}
	l.sender.drain = b.Drain
	l.sender.ready = true
	if b.Echo {
		s.senderSendFlow(l)
	}
}

// senderSendFlow sends the sending link's flow state.
func (s *session) senderSendFlow(l *link) {
	s.c.send(s.channel, &frame.Flow{
		NextIncomingID:    s.nextIncomingID,
		HasNextIncomingID: true,
		IncomingWindow:    sessionWindow,
		NextOutgoingID:    s.nextOutgoingID,
		OutgoingWindow:    sessionWindow,
		Handle:            l.handle,
		HasHandle:         true,
		DeliveryCount:     l.deliveryCount,
		HasDeliveryCount:  true,
		LinkCredit:        l.credit,
		HasLinkCredit:     true,
		Drain:             l.sender.drain,
	}, nil)
}

// pumpCommands sends queued commands on every sending link that may have some, as far
// as link credit (§2.6.7) and the device's incoming-window (§2.5.6) allow.
func (c *conn) pumpCommands() {
	if c.closing {
		return
	}
	for _, s := range c.sessions {
		if s.state != sessionMapped {
			continue
		}
		for _, l := range s.links {
			if l.sender != nil && l.sender.ready && !l.detached() {
				s.pump(l)
			}
		}
	}
}

// pump sends l's commands; owner only.
func (s *session) pump(l *link) {
	c, sd := s.c, l.sender
	if sd.blocked {
		if c.srv.waiting(sd.device, l) {
			return // woken when the old link let go
		}
		sd.blocked = false
	}
read:
	for l.credit > 0 && s.remoteInWindow > 0 {
		from := sd.after
		if sd.rescan {
			from, sd.rescan = 0, false
		}
		want := int(min(l.credit, 64)) + len(sd.inflight) + len(sd.gone)
		cmds, err := sd.read(c, from, want)
		if err != nil {
			c.srv.logNotStored.Warn(c.log, "commands could not be read", "device", sd.device, "err", err)
			sd.ready = false
			return
		}
		sent := 0
		for _, cmd := range cmds {
			sd.after = cmd.Seq
			if sd.inflight[cmd.Seq] || sd.gone[cmd.Seq] {
				continue
			}
			if l.credit == 0 || !s.sendCommand(l, cmd) {
				sd.after = cmd.Seq - 1
				break read // wait for credit or window; still ready
			}
			sent++
		}
		if len(cmds) < want {
			break // the queue is exhausted
		}
		if sent == 0 && len(cmds) == 0 {
			break
		}
	}
	if l.credit > 0 && s.remoteInWindow > 0 {
		sd.ready = false // nothing more to read until woken
	}
	if sd.drain && (!sd.ready || l.credit == 0) {
		// §2.6.7 drain: nothing more to send, so the credit is used up by advancing
		// the delivery-count, and a flow tells the device.
		l.deliveryCount += l.credit
		l.credit = 0
		s.senderSendFlow(l)
		sd.drain = false
	}
	l.mirrorCredit()
}

// sendCommand sends one command as an unsettled delivery, in as many transfer frames as
// the device's max-frame-size needs; false if the session's window is too small now.
func (s *session) sendCommand(l *link, cmd Command) bool {
	c := s.c
	// The peer's max-frame-size is at least 512 (§2.7.1) and may be 4 GiB - 1 ("no
	// limit"), which int cannot hold on 32-bit ARM: cap it before converting. 128
	// bytes are left for the frame header and the transfer performative.
	chunk := int(min(c.maxOut, 1<<30)) - 128
	frames := uint32(1)
	if len(cmd.Payload) > chunk {
		frames = uint32((len(cmd.Payload) + chunk - 1) / chunk)
	}
	if s.remoteInWindow < frames {
		return false
	}
	id := s.out.nextDeliveryID
	s.out.nextDeliveryID++
	var tag [8]byte
	for i := range tag {
		tag[i] = byte(cmd.Seq >> (56 - 8*i))
	}
	p := cmd.Payload
	for {
		n := min(len(p), chunk)
		c.send(s.channel, &frame.Transfer{
			Handle:      l.handle,
			DeliveryID:  id,
			DeliveryTag: tag[:],
			More:        n < len(p),
		}, p[:n])
		s.nextOutgoingID++
		s.remoteInWindow--
		p = p[n:]
		if len(p) == 0 {
			break
		}
	}
	l.credit--
	l.deliveryCount++
	l.sender.inflight[cmd.Seq] = true
	s.out.unsettled[id] = outDelivery{link: l, seq: cmd.Seq, payload: cmd.Payload}
	if l.sender.direct != nil {
		c.srv.dcSent.Add(1)
		c.srv.dcInFlight.Add(1)
	} else {
		c.srv.cmdSent.Add(1)
	}
	return true
}

// senderDisposition handles a device's disposition of deliveries the gateway sent
// (§2.7.6): the outcome decides what the queue does with each command.
func (s *session) senderDisposition(d *frame.Disposition) {
	last := d.First
	if d.HasLast {
		last = d.Last
	}
	if last-d.First > 1<<20 {
		return
	}
	for id := d.First; ; id++ {
		if od, ok := s.out.unsettled[id]; ok {
			s.commandOutcome(id, od, d)
		}
		if id == last {
			break
		}
	}
}

// commandOutcome applies one device outcome.
func (s *session) commandOutcome(id uint32, od outDelivery, d *frame.Disposition) {
	c, l := s.c, od.link
	sd := l.sender
	if sd.direct != nil {
		st := typedState(d.State)
		if st == nil {
			if !d.Settled {
				return // no outcome yet: wait
			}
			st = &frame.Released{} // settled without an outcome: the cloud keeps it
		}
		s.settled(id, od, d)
		s.directOutcome(l, od.seq, st)
		return
	}
	var o *Outcome
	again := false
	switch frame.StateCode(d.State) {
	case frame.CodeAccepted:
		o = &Outcome{Kind: Delivered}
	case frame.CodeRejected:
		o = &Outcome{Kind: DeadLetter, Reason: "rejected by the device"}
		if e := stateError(d.State); e != "" {
			o.Reason = "rejected by the device: " + e
		}
	case frame.CodeModified:
		failed, here := modifiedFields(d.State)
		switch {
		case here:
			o = &Outcome{Kind: DeadLetter, Reason: "modified by the device: undeliverable-here"}
		case failed:
			p, err := message.IncrementDeliveryCount(od.payload)
			if err == nil {
				o = &Outcome{Kind: Rewrite, Payload: p}
				again = true
			}
		}
	case frame.CodeReleased:
	default:
		if !d.Settled {
			return // no outcome yet (a transactional or other state): wait
		}
	}
	s.settled(id, od, d)
	if o == nil {
		// Released (or modified without failure): sent again later, first in line.
		sd.rescan, sd.ready = true, true
		c.srv.cmdReleased.Add(1)
		return
	}
	sd.gone[od.seq] = true
	seq := od.seq
	c.srv.commands.Settle(sd.device, seq, *o, func(err error) {
		if err != nil {
			c.srv.logNotStored.Warn(c.log, "a command's outcome could not be stored; it will be sent again", "device", sd.device, "err", err)
		}
		c.commandSettled(cmdSettled{link: l, seq: seq, again: again || err != nil})
	})
	switch o.Kind {
	case Delivered:
		c.srv.cmdAccepted.Add(1)
	case DeadLetter:
		c.srv.cmdDead.Add(1)
	}
}

// settled forgets a delivery the device gave its outcome for, and settles it in turn if
// the device waits for that; the same for both sources.
func (s *session) settled(id uint32, od outDelivery, d *frame.Disposition) {
	delete(s.out.unsettled, id)
	delete(od.link.sender.inflight, od.seq)
	if !d.Settled {
		// rcv-settle-mode second: the device waits for the sender to settle (§2.6.12).
		s.c.send(s.channel, &frame.Disposition{Role: frame.RoleSender, First: id, Settled: true, State: d.State}, nil)
	}
}

// stateError returns the condition and description of a rejected state's error.
func stateError(st any) string {
	l := describedList(st)
	if len(l) == 0 {
		return ""
	}
	e := describedList(l[0])
	if len(e) == 0 {
		return ""
	}
	out := fmt.Sprint(e[0])
	if len(e) > 1 && e[1] != nil {
		out += ": " + fmt.Sprint(e[1])
	}
	return out
}

// modifiedFields returns delivery-failed and undeliverable-here of a modified state.
func modifiedFields(st any) (failed, here bool) {
	l := describedList(st)
	if len(l) > 0 {
		failed, _ = l[0].(bool)
	}
	if len(l) > 1 {
		here, _ = l[1].(bool)
	}
	return failed, here
}

func describedList(v any) codec.List {
	if d, ok := v.(*codec.Described); ok {
		l, _ := d.Value.(codec.List)
		return l
	}
	return nil
}
