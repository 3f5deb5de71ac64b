package uplink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// lane forwards the messages of one target address in a pipeline: its sending
// goroutine sends them in the order the reader handed them over, its settling
// goroutine awaits their outcomes in the same order and acts on them. An address
// the cloud gives no link credit, or that is held, so holds up only its own lane.
// The lanes share the pipeline's InFlight tokens, the rate limit and the deleter.
//
// A lane halts when its address is held or its link cannot be had: it sends
// nothing more in this pipeline and drops what is queued (it stays stored, and the
// next pipeline reads it again, in order).
type lane struct {
	p        *pipeline
	target   string
	queue    chan *store.Message // reader → sender
	receipts chan sent           // sender → settler; closed by the sender
	passedBy chan struct{}       // closed by the reader: it left later messages of target stored
	stuck    chan struct{}       // closed by halt

	haltOnce  sync.Once
	halted    atomic.Bool
	busySince atomic.Int64 // Unix ns since the sender waits for the cloud (attach, credit); 0: it does not
	waited    atomic.Int64 // ns the sender waited for the cloud since its queue was last empty; see slowWait
	emptied   atomic.Int64 // counts the times the sender found its queue empty
	inFlight  atomic.Int64 // tokens the lane holds: its messages sent or being sent, awaiting their outcome

	// Owned by the reader: how long it waited for room in the queue since the
	// sender last found it empty (when emptied was emptiedSeen).
	fullWaited  time.Duration
	emptiedSeen int64
}

// slowWait is the shortest wait for the cloud (an attach, link credit) that counts
// towards passing a lane by: shorter ones are the usual cost of a send, also when
// the connection is busy, and not something the other addresses should get around.
const slowWait = 10 * time.Millisecond

// sent is a message on the wire, awaiting its outcome.
type sent struct {
	seq     uint64
	target  string
	payload []byte // as stored, for a modified outcome to rewrite
	receipt amqp.SendReceipt
}

// startLane starts the lane of target; the pipeline waits for its goroutines.
func (p *pipeline) startLane(target string) *lane {
	l := &lane{
		p:        p,
		target:   target,
		queue:    make(chan *store.Message, min(p.f.u.cfg.InFlight, laneQueue)),
		receipts: make(chan sent, p.f.u.cfg.InFlight),
		passedBy: make(chan struct{}),
		stuck:    make(chan struct{}),
	}
	p.lanes[target] = l
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		defer close(l.receipts)
		l.sendAll()
	}()
	go func() {
		defer p.wg.Done()
		l.settleAll()
	}()
	return l
}

// halt stops the lane sending for the rest of the pipeline; see lane.
func (l *lane) halt() {
	l.haltOnce.Do(func() {
		l.halted.Store(true)
		close(l.stuck)
	})
}

func (l *lane) busy(on bool) {
	now := l.p.f.u.now().UnixNano()
	if on {
		l.busySince.Store(now)
		return
	}
	if t := l.busySince.Swap(0); t != 0 && time.Duration(now-t) >= slowWait {
		l.waited.Add(now - t)
	}
}

// cloudWaited returns how long, up to now, the sender waited for the cloud since its
// queue was last empty, counting waits of slowWait and more. An address whose link
// gets credit slowly adds up here even when no single send waits long.
func (l *lane) cloudWaited(now time.Time) time.Duration {
	d := time.Duration(l.waited.Load())
	if t := l.busySince.Load(); t != 0 && time.Duration(now.UnixNano()-t) >= slowWait {
		d += time.Duration(now.UnixNano() - t)
	}
	return d
}

// untoken gives back a token the lane held.
func (l *lane) untoken() {
	l.inFlight.Add(-1)
	<-l.p.tokens
}

// sendAll sends the queued messages until the pipeline stops sending. Once the
// reader passed the address by and the queue is sent, it ends the pipeline so that
// the next one sends the address's later messages, after these.
func (l *lane) sendAll() {
	p := l.p
	passedBy, passed := l.passedBy, false
	for {
		var m *store.Message
		select {
		case m = <-l.queue:
		default:
			// The lane caught up with the reader: what it waited for so far no
			// longer holds anyone up.
			l.waited.Store(0)
			l.emptied.Add(1)
			if passed && !l.halted.Load() {
				p.f.u.log.Debug("passed-by address goes on", "target", l.target)
				p.stop(errRetry)
				return
			}
			select {
			case m = <-l.queue:
			case <-passedBy:
				passed, passedBy = true, nil
				continue
			case <-p.sending.Done():
				return
			}
		}
		if p.sending.Err() != nil {
			return
		}
		if l.halted.Load() {
			p.idle(1)
			continue
		}
		err := l.send(m)
		p.idle(1)
		if err != nil {
			if p.sending.Err() == nil {
				p.fail(err)
			}
			return
		}
	}
}

// send sends one stored message, dead-letters it if it can never be sent, or halts
// the lane if the address's link cannot be had. It returns only failures.
func (l *lane) send(m *store.Message) error {
	p, f := l.p, l.p.f
	out, err := prepare(m, l.target, "shadowgw:"+f.u.cfg.ContainerID+":", f.u.now())
	if err != nil {
		return f.deadLetter(m.Seq, m.Address, err.Error())
	}
	// An attach is not cancelled when the pipeline stops sending: it is short, and
	// the link is kept for the next pipeline.
	l.busy(true)
	snd, err := f.link(p.ctx, out.target)
	l.busy(false)
	switch {
	case errors.Is(err, errHeld):
		l.halt()
		return nil
	case errors.Is(err, errLinkLimit):
		// The address waits for the next pipeline, which starts after all links were
		// closed; the other addresses go on until then.
		p.needLinks.Store(true)
		l.halt()
		return nil
	case err != nil:
		return err
	}
	if limit := snd.MaxMessageSize(); limit > 0 && uint64(out.size) > limit {
		return f.deadLetter(m.Seq, m.Address, fmt.Sprintf("message of %d bytes exceeds the cloud's max-message-size %d for %q", out.size, limit, out.target))
	}
	select {
	case p.tokens <- struct{}{}:
	case <-p.sending.Done():
		return context.Cause(p.sending)
	}
	l.inFlight.Add(1)
	if err := f.u.limit.wait(p.sending, out.size); err != nil {
		l.untoken()
		return err
	}
	// §2.6.12: the transfer is unsettled; the cloud settles it with an outcome that
	// the settling goroutine acts on. SendWithReceipt returns once the transfer is
	// written, so the order on the link is the order of these calls. It waits for
	// link credit (§2.6.7) first: up to StallTimeout, and only this lane waits.
	sctx, cancel := context.WithTimeout(p.sending, f.u.cfg.StallTimeout)
	l.busy(true)
	receipt, err := snd.SendWithReceipt(sctx, out.msg, nil)
	l.busy(false)
	stalled := errors.Is(sctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		l.untoken()
		switch {
		case p.sending.Err() != nil:
			// go-amqp checks ctx before each frame: a message of several frames may
			// be cut off midway, a partial delivery (§2.6.14) the next pipeline must
			// not continue on. Attach a new link then.
			f.markBroken(out.target)
			return context.Cause(p.sending)
		case stalled:
			// No credit on this link: hold the address, keep the others flowing.
			f.hold(out.target, fmt.Sprintf("no link credit from the cloud for %v", f.u.cfg.StallTimeout), f.u.cfg.BackoffMin)
			f.dropLink(p.ctx, out.target)
			l.halt()
			return nil
		case !f.connLost(err):
			f.hold(out.target, "send: "+readable(err).Error(), f.u.cfg.BackoffMin)
			f.dropLink(p.ctx, out.target)
			l.halt()
			return nil
		}
		return fmt.Errorf("send message %d to %q: %w", m.Seq, out.target, readable(err))
	}
	f.u.st.inFlight.Add(1)
	f.u.log.Debug("sent", "seq", m.Seq, "target", out.target, "bytes", out.size)
	l.receipts <- sent{seq: m.Seq, target: out.target, payload: m.Payload, receipt: receipt} // never blocks: a token is held
	return nil
}

// settleAll awaits the outcomes of the lane's messages in order and acts on them.
// After a failure it only counts the rest out.
func (l *lane) settleAll() {
	p := l.p
	var failed, linkGone bool
	for s := range l.receipts {
		if !failed {
			if err := l.settle(s, &linkGone); err != nil {
				p.fail(err)
				failed = true
			}
		}
		p.f.u.st.inFlight.Add(-1)
		l.untoken()
	}
}

// settle waits for the outcome of s and acts on it (AMQP 1.0 §3.4). When the
// pipeline fails it keeps waiting up to shutdownGrace, so that messages the cloud
// accepted are deleted rather than sent again. linkGone records that the cloud
// ended the lane's link.
func (l *lane) settle(s sent, linkGone *bool) error {
	p, f := l.p, l.p.f
	sctx, cancel := context.WithTimeout(p.wctx, f.u.cfg.StallTimeout)
	state, err := s.receipt.Wait(sctx)
	cancel()
	if err != nil {
		// The outcome is unknown: the message stays stored and is sent again.
		switch {
		case p.ctx.Err() != nil && p.wctx.Err() != nil:
			return context.Cause(p.ctx)
		case sctx.Err() != nil && p.wctx.Err() == nil:
			return fmt.Errorf("no outcome for message %d to %q within %v", s.seq, s.target, f.u.cfg.StallTimeout)
		case *linkGone:
			return nil // the same link's error again
		case !f.connLost(err):
			// The cloud ended this address's link or session.
			*linkGone = true
			f.hold(s.target, "link: "+readable(err).Error(), f.u.cfg.BackoffMin)
			f.markBroken(s.target)
			l.halt()
			return nil
		}
		return fmt.Errorf("outcome of message %d to %q: %w", s.seq, s.target, readable(err))
	}
	switch state := state.(type) {
	case *amqp.StateAccepted:
		// §3.4.2: the cloud took responsibility; the message may leave the store.
		f.u.st.forwarded.Add(1)
		f.u.log.Debug("accepted", "seq", s.seq, "target", s.target)
		f.u.held.release(s.target, f.u.now())
		f.markReady()
		p.del.add(s.seq)
	case *amqp.StateRejected:
		// §3.4.3: the cloud will never take this message; keep it aside.
		if err := f.deadLetter(s.seq, s.target, "rejected by the cloud: "+describeError(state.Error)); err != nil {
			return err
		}
	case *amqp.StateModified:
		// §3.4.5: not processed. delivery-failed counts an attempt (§3.2.1
		// delivery-count) and message-annotations are merged into the message's;
		// both are written to the store, so the copy sent next, also after a
		// restart, carries them. undeliverable-here keeps it off this connection;
		// otherwise the address is held like after a release.
		f.u.st.released.Add(1)
		f.u.log.Debug("modified", "seq", s.seq, "target", s.target, "delivery_failed", state.DeliveryFailed, "undeliverable_here", state.UndeliverableHere)
		if state.DeliveryFailed || len(state.MessageAnnotations) > 0 {
			if err := f.u.rewriteModified(s.seq, s.payload, state); err != nil {
				f.u.log.Warn("could not record a modified outcome; the message is sent again unchanged", "seq", s.seq, "err", err)
			}
		}
		if state.UndeliverableHere {
			f.markUndeliverable(s.seq, s.target)
		} else {
			f.hold(s.target, "modified by the cloud", f.u.cfg.RetryDelay)
			l.halt()
		}
	default:
		// §3.4.4 released, or settled without a terminal outcome: sent again after
		// RetryDelay (growing while the address keeps being released), after the
		// address's other messages in flight.
		f.u.st.released.Add(1)
		f.u.log.Debug("released", "seq", s.seq, "target", s.target, "state", fmt.Sprint(state))
		f.hold(s.target, "released by the cloud", f.u.cfg.RetryDelay)
		l.halt()
	}
	return nil
}
