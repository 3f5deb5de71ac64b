package edge

import (
	"fmt"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// linkState is where a link is in its life (§2.6.3–§2.6.5).
type linkState uint8

const (
	// linkAttached: attach exchanged, transfers and flows are handled.
	linkAttached linkState = iota
	// linkDetached: detach sent or received, or the attach refused; the link's transfers
	// are ignored until the peer's detach frees the handle.
	linkDetached
)

// link is one link of a session (§2.6). It is owned by the connection's owner goroutine.
//
// Its core (name, handle, target address, state, and the flow state of §2.6.7 that both
// ends keep: delivery-count and link-credit) is the same whichever side the gateway
// plays. The side adds its own state: receiver, for links on which a device sends and
// the gateway receives, the only kind today (receive.go). Links on which the gateway
// sends (commands to devices) will add a sending side beside it, with the same core.
type link struct {
	name          string
	handle        uint32
	role          bool   // the gateway's role on the link: frame.RoleReceiver or RoleSender
	address       string // the target address (receiving); the source address (sending)
	state         linkState
	deliveryCount uint32 // the sender's delivery-count as last known (§2.6.7)
	credit        uint32 // link-credit granted and not yet used (§2.6.7)

	receiver         // the receiving side's state; zero on a refused link
	sender   *sender // the sending side's state (send.go); nil unless the gateway sends
}

// detached reports whether the link's transfers are to be ignored.
func (l *link) detached() bool { return l.state == linkDetached }

// onAttach handles a device attaching a link (§2.6.3, §2.7.3): the checks common to both
// roles, then the side the gateway plays.
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
			if ol.name == a.Name && !ol.detached() {
				os.detachLink(ol, frame.Errorf(frame.ErrLinkStolen, "link attached again under the same name"))
			}
		}
	}
	if a.Role == frame.RoleReceiver {
		// The device receives: the gateway sends it its commands (send.go).
		return s.attachSender(a)
	}
	return s.attachReceiver(a)
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
	s.links[a.Handle] = &link{name: a.Name, handle: a.Handle, role: !a.Role, state: linkDetached}
	s.c.send(s.channel, &frame.Detach{Handle: a.Handle, Closed: true, Error: e}, nil)
	return nil
}

// detachLink closes a link with an error (a link error, §2.8.17); session and
// connection live on.
func (s *session) detachLink(l *link, e *frame.Error) {
	if l.detached() {
		return
	}
	s.c.log.Warn("link detached with an error", "channel", s.channel, "handle", l.handle, "address", l.address, "err", e)
	l.state = linkDetached
	l.buf = nil
	s.closeSender(l)
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
	if l.detached() {
		return nil
	}
	l.state = linkDetached
	s.closeSender(l)
	if d.Error != nil {
		s.c.log.Info("device detached a link with an error", "address", l.address, "err", peerText(d.Error.Error()))
	}
	s.c.send(s.channel, &frame.Detach{Handle: d.Handle, Closed: d.Closed}, nil)
	return nil
}
