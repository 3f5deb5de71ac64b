package edge

import (
	"context"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// Direct routes the deliveries of some target addresses past the Sink, straight to
// where they go (a direct route, see package uplink): the device's delivery stays
// unsettled until the far end settled it, and the device gets the far end's outcome
// (AMQP 1.0 §3.4). Nothing of such a delivery reaches the Sink. Its methods must be safe
// for concurrent use.
type Direct interface {
	// Target returns the direct target of a device link from source (the SASL user or
	// container-id, as Delivery.Source) to address, or nil when the address's messages
	// go to the Sink. It is asked once per attach.
	Target(address, source string) DirectTarget
	// Changed returns a channel that receives a value whenever some target's Ready
	// may have changed, and a function the server calls when it no longer watches.
	Changed() (changed <-chan struct{}, stop func())
}

// DirectTarget is where a direct link's deliveries go.
type DirectTarget interface {
	// Ready reports whether the target takes deliveries now. While it does not, the
	// device's link has no credit (§2.6.7). It must be cheap.
	Ready() bool
	// Forward passes d on without blocking. done is called exactly once, from any
	// goroutine, with the outcome: *frame.Accepted, *frame.Rejected, *frame.Released
	// or *frame.Modified. For a delivery the device settled itself (settled), done
	// says whether it went (Accepted) or not (anything else). Forward keeps the
	// order of its calls per target.
	Forward(d *Delivery, settled bool, done func(state any))
}

// A DirectTarget that also implements DirectReleaser is told, once per Target call
// that returned it, when the device link that used it has ended, so that a target no
// link uses can be closed after a while.
type DirectReleaser interface {
	Release()
}

// releaseDirect lets go of a receiving link's direct target, once.
func (l *link) releaseDirect() {
	if l.direct == nil || l.directReleased {
		return
	}
	l.directReleased = true
	if r, ok := l.direct.(DirectReleaser); ok {
		r.Release()
	}
}

// SetDirect makes the server forward the deliveries of the addresses d has targets for
// directly instead of to the Sink. It must be called before Serve.
func (s *Server) SetDirect(d Direct) { s.direct = d }

// directTarget returns the target of a link from source to address, nil if none.
func (s *Server) directTarget(address, source string) DirectTarget {
	if s.direct == nil {
		return nil
	}
	return s.direct.Target(address, source)
}

// watchDirect has every connection reconsider the credit of its links whenever a
// direct target's readiness may have changed, until ctx ends.
func (s *Server) watchDirect(ctx context.Context, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		s.mu.Lock()
		for c := range s.conns {
			c.resume()
		}
		s.mu.Unlock()
	}
}

// grantDirect is grant for a link to a direct target: credit only while the target is
// ready, at most the configured window minus the deliveries still awaiting the far
// end's outcome, so that the far end's own credit, which is what lets those outcomes
// come, flows back to the device. A target no longer ready takes the credit back: §2.6.7
// lets the receiver lower link-credit with a flow; transfers the device had already
// sent arrive after it (see late) and are released.
func (l *link) grantDirect() bool {
	if l.stopped || l.detached() {
		return false
	}
	if !l.direct.Ready() {
		if l.credit == 0 {
			return false
		}
		l.credit, l.revoked = 0, true
		return true
	}
	want := l.window - min(l.outstanding, l.window)
	if want <= l.credit || (want-l.credit < l.window/4 && l.credit > 0) {
		return false
	}
	l.credit, l.revoked = want, false
	return true
}

// late reports whether a transfer without credit is one the device sent before it
// learnt that the gateway took the credit back: it is received and released, not a
// violation of the link's flow control.
func (l *link) late() bool { return l.direct != nil && l.revoked }

// forward hands a complete delivery of a direct link to its target; the outcome comes
// back as a completion, like the Sink's.
func (s *session) forward(l *link, id uint32, settled bool, d *Delivery) {
	c := s.c
	c.outstanding++
	l.outstanding++
	cp := completion{sess: s, link: l, id: id, done: settled, size: len(d.Payload), direct: true}
	l.direct.Forward(d, settled, func(state any) {
		// On the target's goroutine: hand the outcome over to the owner.
		cp.state = state
		c.complete(cp)
	})
}

// completedDirect applies a direct target's outcome: the device's delivery is settled
// with it (rcv-settle-mode first), whatever it is.
func (s *session) completedDirect(cp completion) {
	l := cp.link
	l.outstanding--
	if !cp.done && s.state != sessionEnded && !l.detached() {
		s.acks = append(s.acks, ack{id: cp.id, settled: true, state: cp.state})
	}
	l.wantFlow = true
}

// countDirect adds a completed direct delivery to the server's counters.
func (c *conn) countDirect(cp completion) {
	srv := c.srv
	if _, ok := cp.state.(*frame.Accepted); ok {
		srv.directAccepted.Add(1)
		return
	}
	if cp.done {
		srv.dropped.Add(1)
		srv.logDropped.Warn(c.log, "pre-settled message of a direct route dropped: the cloud did not take it", "address", cp.link.address)
	}
}
