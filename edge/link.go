package edge

import (
	"fmt"
	"time"

	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/edge/message"
)

// link is a link on which a device sends and the gateway receives (§2.6). It is owned by
// the connection's owner goroutine.
type link struct {
	name           string
	handle         uint32
	address        string
	rcvSettleMode  uint8
	deliveryCount  uint32 // the sender's delivery-count as last known (§2.6.7)
	credit         uint32 // link-credit the gateway granted and the device has not used
	outstanding    uint32 // deliveries with the Sink
	maxMessageSize uint64
	window         uint32 // credit the gateway keeps open: Config.Credit
	wantFlow       bool
	stopped        bool // grant no more credit (shutdown)
	detached       bool // detach sent or received: ignore its transfers

	// The delivery being received, for multi-frame transfers (§2.6.14).
	inDelivery bool
	id         uint32
	settled    bool
	buf        []byte
}

// onAttach handles a device attaching a link (§2.6.3, §2.7.3).
func (s *session) onAttach(a *frame.Attach) error {
	c := s.c
	if a.Handle > c.srv.cfg.handleMax() {
		// §2.7.2 handle-max: a handle beyond the announced maximum is a framing error.
		return frame.Errorf(frame.ErrFramingError, fmt.Sprintf("handle %d exceeds handle-max %d", a.Handle, c.srv.cfg.handleMax()))
	}
	if s.links[a.Handle] != nil {
		s.fail(frame.Errorf(frame.ErrHandleInUse, fmt.Sprintf("handle %d is already attached", a.Handle)))
		return nil
	}
	// A link name identifies the link between two containers: attaching it again steals
	// it from the old attachment (§2.6.1, amqp:link:stolen).
	for _, os := range c.sessions {
		for _, ol := range os.links {
			if ol.name == a.Name && !ol.detached {
				os.detachLink(ol, frame.Errorf(frame.ErrLinkStolen, "link attached again under the same name"))
			}
		}
	}
	if a.Role == frame.RoleReceiver {
		return s.refuse(a, frame.Errorf(frame.ErrNotImplemented,
			"the gateway only receives messages from devices: attach as a sender"))
	}
	if a.Target == nil || a.TargetAddress == "" {
		return s.refuse(a, frame.Errorf(frame.ErrNotFound, "a target address is required (the gateway does not create dynamic nodes)"))
	}
	if !c.srv.mayTarget(c.user, a.TargetAddress) {
		return s.refuse(a, frame.Errorf(frame.ErrUnauthorizedAccess,
			fmt.Sprintf("device %q may not send to %q", c.source, a.TargetAddress)))
	}
	l := &link{
		name:           a.Name,
		handle:         a.Handle,
		address:        a.TargetAddress,
		rcvSettleMode:  frame.RcvFirst, // see the attach below
		deliveryCount:  a.InitialDeliveryCount,
		maxMessageSize: c.srv.cfg.MaxMessageSize,
		window:         c.srv.cfg.Credit,
	}
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

// refuse declines a link (§2.6.3): an attach with a null terminus on the gateway's side,
// then a detach that closes it with the reason.
func (s *session) refuse(a *frame.Attach, e *frame.Error) error {
	reply := &frame.Attach{Name: a.Name, Handle: a.Handle, Role: !a.Role, SndSettleMode: a.SndSettleMode}
	if a.Role == frame.RoleReceiver {
		reply.Target = a.Target // the gateway would be the sender: no source
		reply.HasDeliveryCount = true
	} else {
		reply.Source = a.Source
	}
	s.c.send(s.channel, reply, nil)
	s.c.log.Warn("link refused", "channel", s.channel, "handle", a.Handle, "address", a.TargetAddress, "err", e)
	s.links[a.Handle] = &link{name: a.Name, handle: a.Handle, detached: true}
	s.c.send(s.channel, &frame.Detach{Handle: a.Handle, Closed: true, Error: e}, nil)
	return nil
}

// detachLink closes a link with an error (a link error, §2.8.17); session and
// connection live on.
func (s *session) detachLink(l *link, e *frame.Error) {
	if l.detached {
		return
	}
	s.c.log.Warn("link detached with an error", "channel", s.channel, "handle", l.handle, "address", l.address, "err", e)
	l.detached = true
	l.buf = nil
	s.c.send(s.channel, &frame.Detach{Handle: l.handle, Closed: true, Error: e}, nil)
}

// onDetach handles the device's detach: the answer to ours, or its own, which is
// answered in kind (§2.6.5: closed or merely detached).
func (s *session) onDetach(d *frame.Detach) error {
	l := s.links[d.Handle]
	if l == nil {
		s.fail(frame.Errorf(frame.ErrUnattachedHandle, fmt.Sprintf("detach of handle %d, which is not attached", d.Handle)))
		return nil
	}
	delete(s.links, d.Handle)
	if l.detached {
		return nil
	}
	l.detached = true
	if d.Error != nil {
		s.c.log.Info("device detached a link with an error", "address", l.address, "err", peerText(d.Error.Error()))
	}
	s.c.send(s.channel, &frame.Detach{Handle: d.Handle, Closed: d.Closed}, nil)
	return nil
}

// grant tops the link's credit up to the configured window minus the deliveries still
// with the Sink, so a slow store slows the devices (backpressure), and reports whether
// the change is worth a flow frame.
func (l *link) grant(srv *Server) bool {
	if l.stopped || l.detached {
		return false
	}
	want := l.window - min(l.outstanding, l.window)
	if want <= l.credit || (want-l.credit < l.window/4 && l.credit > 0) {
		return false
	}
	if srv.full(l.address) {
		return false // Server.watchPressure wakes the connection when there is room
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
	if l == nil || l.detached {
		return nil
	}
	if !l.inDelivery {
		if !t.HasDeliveryID {
			s.detachLink(l, frame.Errorf(frame.ErrInvalidField, "first transfer of a delivery has no delivery-id"))
			return nil
		}
		if l.credit == 0 {
			s.detachLink(l, frame.Errorf(frame.ErrTransferLimitExceeded, "transfer without link credit"))
			return nil
		}
		l.credit--
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
		c.srv.logMalformed.warn(c.log, "malformed message rejected", "address", l.address, "err", err)
		if !settled {
			s.acks = append(s.acks, ack{id: id, settled: true,
				state: &frame.Rejected{Error: frame.Errorf(frame.ErrDecode, err.Error())}})
		}
		l.wantFlow = true
		return
	}
	d := &Delivery{
		Address:  l.address,
		Source:   c.source,
		Payload:  payload,
		Received: time.Now(),
		Info:     info,
	}
	c.outstanding++
	l.outstanding++
	size := len(payload)
	srv, log, address := c.srv, c.log, l.address
	c.srv.sink.Store(d, func(err error) {
		// Counted here, not in the owner loop, which may have ended with the connection.
		switch {
		case err == nil:
			srv.messages.Add(1)
			srv.bytes.Add(uint64(size))
		case settled:
			srv.dropped.Add(1)
			srv.logDropped.warn(log, "pre-settled message dropped: it could not be stored", "address", address, "err", err)
		}
		c.complete(completion{sess: s, link: l, id: id, done: settled, err: err})
	})
}
