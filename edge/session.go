package edge

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"syscall"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// sessionWindow is the incoming-window the gateway keeps open (§2.5.6), in transfer
// frames. Link credit, not this window, is what limits deliveries.
const sessionWindow = 2048

// ack is a disposition waiting to be sent.
type ack struct {
	id      uint32
	settled bool
	state   any
}

// sessionState is where a session is in its life (§2.5.5).
type sessionState uint8

const (
	// sessionMapped: begin exchanged; frames are handled.
	sessionMapped sessionState = iota
	// sessionEnding: end sent with an error; only the peer's end is handled.
	sessionEnding
	// sessionEnded: unmapped; completions that still arrive are not acknowledged.
	sessionEnded
)

// session is one session (§2.5) of a connection. It is owned by the connection's owner
// goroutine.
//
// It keeps both directions of the session's transfer accounting (§2.5.6): incoming,
// for the transfers devices send, and outgoing, which the gateway announces in begin
// and flow and which its own transfers will count once it sends to devices (a sending
// link side beside the receiving one, see link).
type session struct {
	c       *conn
	channel uint16 // the peer's channel; the gateway uses the same number
	state   sessionState

	// Incoming: transfers from the device.
	nextIncomingID uint32 // transfer-id of the next transfer expected (§2.5.6)
	inWindow       uint32 // transfers the peer may still send before a flow

	// Outgoing: transfers to the device. The gateway sends none yet, so nextOutgoingID
	// stays at its initial value; remoteInWindow is what the device last said it takes.
	nextOutgoingID uint32 // transfer-id the gateway's next transfer gets (§2.5.6)
	remoteInWindow uint32 // remote-incoming-window: transfers the device still accepts

	out outgoing // deliveries sent to the device (send.go)

	links     map[uint32]*link
	unsettled map[uint32]*link // accepted in rcv-settle-mode second, not yet settled by the device
	acks      []ack
}

// onBegin handles a begin (§2.7.2): the device starts a session, the gateway answers.
func (c *conn) onBegin(ch uint16, b *frame.Begin) error {
	if b.HasRemoteChannel {
		return frame.Errorf(frame.ErrNotAllowed, "begin with remote-channel set: the gateway never begins sessions")
	}
	if ch > c.srv.cfg.channelMax() {
		return frame.Errorf(frame.ErrFramingError, fmt.Sprintf("channel %d exceeds channel-max %d", ch, c.srv.cfg.channelMax()))
	}
	if c.sessions[ch] != nil {
		return frame.Errorf(frame.ErrFramingError, fmt.Sprintf("begin on channel %d, which already has a session", ch))
	}
	s := &session{
		c:              c,
		channel:        ch,
		nextIncomingID: b.NextOutgoingID,
		inWindow:       sessionWindow,
		remoteInWindow: b.IncomingWindow,
		links:          make(map[uint32]*link),
		unsettled:      make(map[uint32]*link),
	}
	c.sessions[ch] = s
	c.send(ch, &frame.Begin{
		RemoteChannel:    ch,
		HasRemoteChannel: true,
		NextOutgoingID:   s.nextOutgoingID,
		IncomingWindow:   sessionWindow,
		OutgoingWindow:   sessionWindow,
		HandleMax:        c.srv.cfg.handleMax(),
	}, nil)
	return nil
}

// handle dispatches a frame on this session's channel.
func (s *session) handle(f inFrame) error {
	if s.state == sessionEnding {
		if _, ok := f.body.(*frame.End); ok {
			s.drop()
		}
		return nil // §2.5.5: after sending end, frames other than end are ignored
	}
	switch b := f.body.(type) {
	case *frame.Attach:
		return s.onAttach(b)
	case *frame.Flow:
		return s.onFlow(b)
	case *frame.Transfer:
		return s.onTransfer(b, f.payload)
	case *frame.Disposition:
		s.onDisposition(b)
		return nil
	case *frame.Detach:
		return s.onDetach(b)
	case *frame.End:
		if b.Error != nil {
			s.c.log.Info("device ended a session with an error", "channel", s.channel, "err", peerText(b.Error.Error()))
		}
		s.c.send(s.channel, &frame.End{}, nil)
		s.drop()
		return nil
	}
	return frame.Errorf(frame.ErrNotAllowed, fmt.Sprintf("unexpected %T on channel %d", f.body, s.channel))
}

// fail ends the session with an error (a session error, §2.8.16); the connection lives on.
func (s *session) fail(e *frame.Error) {
	s.c.log.Warn("session ended with an error", "channel", s.channel, "err", e)
	s.c.send(s.channel, &frame.End{Error: e}, nil)
	s.state = sessionEnding
	for _, l := range s.links {
		l.state = linkDetached
		s.closeSender(l)
	}
}

// drop unmaps the session after the ends were exchanged.
func (s *session) drop() {
	s.state = sessionEnded
	for _, l := range s.links {
		l.state = linkDetached
		s.closeSender(l)
	}
	delete(s.c.sessions, s.channel)
}

// link returns the attached link with the peer's handle, or ends the session with
// amqp:session:unattached-handle (§2.8.16).
func (s *session) link(h uint32) *link {
	l := s.links[h]
	if l == nil {
		s.fail(frame.Errorf(frame.ErrUnattachedHandle, fmt.Sprintf("handle %d is not attached", h)))
	}
	return l
}

// onFlow handles a flow from the device (§2.7.4). A sender's flow carries its
// delivery-count, which is authoritative (§2.6.7): credit it used up, e.g. after a drain,
// is gone.
func (s *session) onFlow(b *frame.Flow) error {
	// §2.5.6: remote-incoming-window = the flow's next-incoming-id + incoming-window -
	// our next-outgoing-id; a flow without next-incoming-id (before the device saw our
	// begin) counts from our initial transfer-id.
	next := s.nextOutgoingID
	if b.HasNextIncomingID {
		next = b.NextIncomingID
	}
	s.remoteInWindow = next + b.IncomingWindow - s.nextOutgoingID
	if !b.HasHandle {
		if b.Echo {
			s.sendFlow(nil)
		}
		return nil
	}
	l := s.link(b.Handle)
	if l == nil || l.detached() {
		return nil
	}
	if l.sender != nil {
		s.senderFlow(l, b)
		return nil
	}
	if b.HasDeliveryCount {
		used := b.DeliveryCount - l.deliveryCount // serial-number arithmetic (RFC 1982)
		if used > 0 && used < math.MaxUint32/2 {
			l.credit -= min(used, l.credit)
			l.deliveryCount = b.DeliveryCount
		}
	}
	if b.Echo {
		s.sendFlow(l)
	}
	return nil
}

// onDisposition handles the device settling deliveries the gateway accepted in
// rcv-settle-mode second (§2.6.12).
func (s *session) onDisposition(d *frame.Disposition) {
	if d.Role == frame.RoleReceiver {
		s.senderDisposition(d) // the device's outcomes of commands (send.go)
		return
	}
	if d.Role != frame.RoleSender || !d.Settled || len(s.unsettled) == 0 {
		return
	}
	last := d.First
	if d.HasLast {
		last = d.Last
	}
	if span := last - d.First; span >= uint32(len(s.unsettled)) {
		for id := range s.unsettled {
			if id-d.First <= span {
				delete(s.unsettled, id)
			}
		}
		return
	}
	for id := d.First; ; id++ {
		delete(s.unsettled, id)
		if id == last {
			break
		}
	}
}

// sendFlow sends the session's flow state, and the link's when l is not nil.
func (s *session) sendFlow(l *link) {
	s.inWindow = sessionWindow
	f := &frame.Flow{
		NextIncomingID:    s.nextIncomingID,
		HasNextIncomingID: true,
		IncomingWindow:    sessionWindow,
		NextOutgoingID:    s.nextOutgoingID,
		OutgoingWindow:    sessionWindow,
	}
	if l != nil {
		f.Handle, f.HasHandle = l.handle, true
		f.DeliveryCount, f.HasDeliveryCount = l.deliveryCount, true
		f.LinkCredit, f.HasLinkCredit = l.credit, true
	}
	s.c.send(s.channel, f, nil)
}

// completed applies a Sink result: it queues the disposition and marks the link for
// more credit.
func (s *session) completed(cp completion) {
	if cp.direct {
		s.completedDirect(cp)
		return
	}
	l := cp.link
	l.outstanding--
	if !cp.done && s.state != sessionEnded && !l.detached() {
		a := ack{id: cp.id, settled: true, state: &frame.Accepted{}}
		if cp.err != nil {
			// Not stored. The answer is rejected with the reason (§3.4.3), not released:
			// some client stacks (go-amqp's Send among them) report released as success,
			// and the device must learn that the message is not safe.
			a.state = &frame.Rejected{Error: storeError(cp.err)}
			s.c.srv.logNotStored.Warn(s.c.log, "message not stored; answered rejected", "address", l.address, "err", cp.err)
		} else if l.rcvSettleMode == frame.RcvSecond {
			a.settled = false
			s.unsettled[cp.id] = l
		}
		s.acks = append(s.acks, a)
	}
	l.wantFlow = true
}

// flushAcks sends queued dispositions, coalescing runs of consecutive delivery-ids with
// the same outcome into one frame (§2.7.6 first/last), then any flows that are due.
func (s *session) flushAcks() {
	if s.state != sessionMapped {
		return
	}
	// Completions of one group commit arrive in any order; sorted, they form ranges.
	slices.SortFunc(s.acks, func(a, b ack) int { return cmp.Compare(a.id, b.id) })
	for i := 0; i < len(s.acks); {
		a := s.acks[i]
		j := i + 1
		for j < len(s.acks) && s.acks[j].id == s.acks[j-1].id+1 && s.acks[j].settled == a.settled &&
			sameState(s.acks[j].state, a.state) {
			j++
		}
		s.c.send(s.channel, &frame.Disposition{
			Role:    frame.RoleReceiver,
			First:   a.id,
			Last:    s.acks[j-1].id,
			HasLast: j-1 > i,
			Settled: a.settled,
			State:   a.state,
		}, nil)
		i = j
	}
	s.acks = s.acks[:0]
	sent := false
	for _, l := range s.links {
		if l.wantFlow && l.grant(s.c.srv) {
			s.sendFlow(l)
			sent = true
		}
		l.wantFlow = false
	}
	if !sent && s.inWindow < sessionWindow/2 {
		s.sendFlow(nil)
	}
}

func sameState(a, b any) bool {
	switch a.(type) {
	case *frame.Accepted:
		_, ok := b.(*frame.Accepted)
		return ok
	case *frame.Released:
		_, ok := b.(*frame.Released)
		return ok
	}
	return false
}

// storeError maps a Sink error to the AMQP error the device sees.
func storeError(err error) *frame.Error {
	if errors.Is(err, syscall.ENOSPC) || isFull(err) {
		return frame.Errorf(frame.ErrResourceLimitExceeded, "the gateway's store is full: "+err.Error())
	}
	return frame.Errorf(frame.ErrInternal, "the gateway could not store the message: "+err.Error())
}
