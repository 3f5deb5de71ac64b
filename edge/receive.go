package edge

import (
	"fmt"
	"time"

	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/edge/message"
)

// receiver is the receiving side of a link: a device sends, the gateway receives and hands
// complete messages to the Sink (§2.6.12–§2.6.14). It is part of its link, owned by the
// connection's owner goroutine.
type receiver struct {
	rcvSettleMode  uint8
	outstanding    uint32 // deliveries with the Sink
	maxMessageSize uint64
	window         uint32 // credit the gateway keeps open: Config.Credit
	wantFlow       bool
	stopped        bool         // grant no more credit (shutdown)
	direct         DirectTarget // where a direct route's deliveries go; nil: the Sink
	revoked        bool         // credit taken back from a direct link (see late)
	directReleased bool         // the link let go of direct (see releaseDirect)

	// The delivery being received, for multi-frame transfers (§2.6.14).
	inDelivery bool
	id         uint32
	settled    bool
	buf        []byte
}

// attachReceiver attaches a link on which the device sends (§2.6.3): it checks the
// target, answers the attach as receiver and grants the first credit.
func (s *session) attachReceiver(a *frame.Attach) error {
	c := s.c
	// A null target, or one without an address, is an anonymous relay (relay.go): each
	// message's to is its address, checked message by message.
	if a.TargetDynamic {
		return s.refuse(a, frame.Errorf(frame.ErrNotFound, "a target address is required (the gateway does not create dynamic nodes)"))
	}
	if a.TargetAddress != "" && !c.srv.mayTarget(c.user, a.TargetAddress) {
		return s.refuse(a, frame.Errorf(frame.ErrUnauthorizedAccess,
			fmt.Sprintf("device %q may not send to %q", c.source, a.TargetAddress)))
	}
	l := &link{
		name:          a.Name,
		handle:        a.Handle,
		role:          frame.RoleReceiver,
		address:       a.TargetAddress,
		deliveryCount: a.InitialDeliveryCount,
		receiver: receiver{
			rcvSettleMode:  frame.RcvFirst, // see the attach below
			maxMessageSize: c.srv.cfg.MaxMessageSize,
			window:         c.srv.cfg.Credit,
		},
	}
	l.direct = c.srv.directTarget(l.address, c.source)
	if a.MaxMessageSize != 0 && a.MaxMessageSize < l.maxMessageSize {
		l.maxMessageSize = a.MaxMessageSize
	}
	s.links[a.Handle] = l
	c.send(s.channel, &frame.Attach{
		Name:          a.Name,
		Handle:        a.Handle,
		Role:          frame.RoleReceiver,
		SndSettleMode: a.SndSettleMode,
		// §2.7.3: the receiver's rcv-settle-mode is the mode in use, the sender's only
		// a wish. The gateway settles each outcome at once (first), whatever the device
		// asked: uAMQP-C asks second by default yet completes a send only on a settled
		// disposition, so honouring second left both sides waiting.
		RcvSettleMode:  frame.RcvFirst,
		Source:         a.Source,
		Target:         a.Target,
		MaxMessageSize: c.srv.cfg.MaxMessageSize,
	}, nil)
	c.log.Debug("link attached", "channel", s.channel, "handle", a.Handle, "address", l.address)
	l.grant(c.srv)
	s.sendFlow(l)
	return nil
}

// grant tops the link's credit up to the configured window minus the deliveries still
// with the Sink, so a slow store slows the devices (backpressure), and reports whether
// the change is worth a flow frame.
func (l *link) grant(srv *Server) bool {
	if l.direct != nil {
		return l.grantDirect()
	}
	if l.stopped || l.detached() {
		return false
	}
	want := l.window - min(l.outstanding, l.window)
	if want <= l.credit || (want-l.credit < l.window/4 && l.credit > 0) {
		return false
	}
	if srv.full(l.address) {
		return false // Server.watchPressure wakes the connection when the Sink has room
	}
	l.credit = want
	return true
}

// onTransfer handles one transfer frame (§2.7.5): it checks the session window and the
// link credit, assembles multi-frame deliveries, and hands complete messages to the Sink.
func (s *session) onTransfer(t *frame.Transfer, payload []byte) error {
	if s.inWindow == 0 {
		s.fail(frame.Errorf(frame.ErrWindowViolation, "transfer beyond the session's incoming-window"))
		return nil
	}
	s.inWindow--
	s.nextIncomingID++
	l := s.link(t.Handle)
	if l == nil || l.detached() {
		return nil
	}
	if !l.inDelivery {
		if !t.HasDeliveryID {
			s.detachLink(l, frame.Errorf(frame.ErrInvalidField, "first transfer of a delivery has no delivery-id"))
			return nil
		}
		if l.credit == 0 && !l.late() {
			s.detachLink(l, frame.Errorf(frame.ErrTransferLimitExceeded, "transfer without link credit"))
			return nil
		}
		l.credit -= min(l.credit, 1)
		l.deliveryCount++
		l.inDelivery, l.id, l.settled, l.buf = true, t.DeliveryID, false, nil
	} else if t.HasDeliveryID && t.DeliveryID != l.id {
		s.detachLink(l, frame.Errorf(frame.ErrInvalidField,
			fmt.Sprintf("delivery-id %d in the middle of delivery %d", t.DeliveryID, l.id)))
		return nil
	}
	l.settled = l.settled || t.Settled
	if t.Aborted {
		// §2.6.14: an aborted delivery is discarded; it was settled by the abort. The
		// credit it used is given back with the next flow.
		l.inDelivery, l.buf = false, nil
		l.wantFlow = true
		return nil
	}
	if uint64(len(l.buf))+uint64(len(payload)) > l.maxMessageSize {
		s.detachLink(l, frame.Errorf(frame.ErrMessageSizeExceeded,
			fmt.Sprintf("message larger than max-message-size %d", l.maxMessageSize)))
		return nil
	}
	if l.buf == nil {
		l.buf = payload // a frame buffer is never reused: single-frame messages are not copied
	} else {
		l.buf = append(l.buf, payload...)
	}
	if t.More {
		return nil
	}
	l.inDelivery = false
	s.deliver(l, l.id, l.settled, l.buf)
	l.buf = nil
	return nil
}

// deliver checks a complete message and hands it to the Sink.
func (s *session) deliver(l *link, id uint32, settled bool, payload []byte) {
	c := s.c
	info, err := message.Parse(payload)
	if err != nil {
		c.srv.rejected.Add(1)
		c.srv.logMalformed.Warn(c.log, "malformed message rejected", "address", l.address, "err", err)
		if !settled {
			s.acks = append(s.acks, ack{id: id, settled: true,
				state: &frame.Rejected{Error: frame.Errorf(frame.ErrDecode, err.Error())}})
		}
		l.wantFlow = true
		return
	}
	address := l.address
	if address == "" {
		if address = s.relayAddress(id, settled, info); address == "" {
			l.wantFlow = true
			return
		}
	}
	d := &Delivery{
		Address:  address,
		Source:   c.source,
		Payload:  payload,
		Received: time.Now(),
		Info:     info,
	}
	if l.direct != nil {
		s.forward(l, id, settled, d)
		return
	}
	c.outstanding++
	l.outstanding++
	cp := completion{sess: s, link: l, id: id, done: settled, size: len(payload)}
	c.srv.sink.Store(d, func(err error) {
		// This runs on the Sink's goroutine (the store's committer): hand the result over
		// and let the owner act on it.
		cp.err = err
		c.complete(cp)
	})
}
