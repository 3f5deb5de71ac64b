package edge

import (
	"fmt"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// One command receiver per device: a device's commands go to one link at a time, so
// that they arrive in order and each outcome is the device's only one. A second
// receiver for the same device, on the same connection or another, takes over: the
// old link is detached with amqp:link:stolen (§2.8.17 link-error: stolen), its
// unsettled commands go back to the queue (a direct link's are released upstream),
// and the new link sends nothing until the old one has let go, then sends them again
// from the start of the queue, in order.

// cmdClaim is who holds a device's commands: the link and its connection, and the
// link it took over from while that one has not let go yet.
type cmdClaim struct {
	c    *conn
	l    *link
	prev *link // the stolen link, until its closeSender ran; nil then
}

// claimCommands makes l on c the device's command receiver and returns the link it
// takes over from (and that link's connection), if any.
func (s *Server) claimCommands(dev string, c *conn, l *link) (*conn, *link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmdClaims == nil {
		s.cmdClaims = make(map[string]*cmdClaim)
	}
	old := s.cmdClaims[dev]
	s.cmdClaims[dev] = &cmdClaim{c: c, l: l}
	if old == nil {
		return nil, nil
	}
	s.cmdClaims[dev].prev = old.l
	return old.c, old.l
}

// letGo records that l no longer receives dev's commands; a link that took over from
// it may start (its connection is woken). last reports whether the device has no
// command receiver left.
func (s *Server) letGo(dev string, l *link) (last bool) {
	s.mu.Lock()
	cl := s.cmdClaims[dev]
	var wake *conn
	switch {
	case cl == nil:
	case cl.l == l:
		delete(s.cmdClaims, dev)
		last = true
	case cl.prev == l:
		cl.prev = nil
		wake = cl.c
	}
	s.mu.Unlock()
	if wake != nil {
		wake.commandsWake()
	}
	return last
}

// waiting reports whether l still waits for the link it took over from; owner only.
func (s *Server) waiting(dev string, l *link) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.cmdClaims[dev]
	return cl != nil && cl.l == l && cl.prev != nil
}

// steal detaches the old command receiver of a device; called on the new link's
// connection's goroutine. The old link is detached at once when it is on the same
// connection, else by its own connection's owner.
func (c *conn) steal(oc *conn, old *link, dev string) {
	if oc != c {
		oc.mu.Lock()
		oc.cmdSteal = append(oc.cmdSteal, old)
		oc.mu.Unlock()
		select {
		case oc.wake <- struct{}{}:
		default:
		}
		return
	}
	c.detachStolen(old, dev)
}

// detachStolen detaches l, whose device's commands another link took; owner only.
func (c *conn) detachStolen(l *link, dev string) {
	for _, s := range c.sessions {
		if s.links[l.handle] == l {
			s.detachLink(l, frame.Errorf(frame.ErrLinkStolen,
				fmt.Sprintf("another command receiver for device %q took over", dev)))
			return
		}
	}
	// Already gone (its detach crossed ours): closeSender has let go.
}

// drainSteals detaches the links other connections took over; owner only.
func (c *conn) drainSteals() {
	c.mu.Lock()
	ls := c.cmdSteal
	c.cmdSteal = nil
	c.mu.Unlock()
	for _, l := range ls {
		if l.sender != nil {
			c.detachStolen(l, l.sender.device)
		}
	}
}
