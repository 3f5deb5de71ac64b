package uplink

import (
	"errors"
	"fmt"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// event is what a lane reports to the owner.
type event struct {
	kind eventKind
	lane *lane
	seq  uint64

	outcomes []event // evOutcomes: evOutcome events, in order

	state   amqp.DeliveryState // evOutcome
	payload []byte             // evOutcome: as stored, for a modified outcome
	err     error              // evOutcome, evSendFailed, evAttachFailed
	reason  string             // evUnsendable
	lost    bool               // err means the connection is gone
	stalled bool               // evSendFailed: no credit; evOutcome: no outcome; for StallTimeout
	refused bool               // evAttachFailed: the cloud refused the link
}

type eventKind int

const (
	evNone         eventKind = iota
	evOutcome                // the message was sent; its outcome, or why none came
	evOutcomes               // several evOutcome
	evDropped                // not sent (the lane halted or stops); it stays stored
	evUnsendable             // it can never be sent: reason
	evSendFailed             // the send failed; the lane's link is unusable
	evAttachFailed           // the lane's link could not be attached
	evCaughtUp               // the lane found its queue empty while watched
	evLaneDone               // the lane's goroutines ended
)

// handle acts on a lane's report. It returns only failures, which end forwarding
// on this connection.
func (f *forwarder) handle(ev event) error {
	l := ev.lane
	switch ev.kind {
	case evCaughtUp:
		f.caughtUp(l)
		return nil
	case evLaneDone:
		f.running--
		return nil
	case evOutcomes:
		var first error
		for _, o := range ev.outcomes {
			f.settled(o.seq)
			if err := f.outcome(l, o); err != nil && first == nil {
				first = err
			}
		}
		putBatch(ev.outcomes)
		return first
	}
	h := f.settled(ev.seq)
	target := l.target
	switch ev.kind {
	case evDropped:
	case evUnsendable:
		f.deadLetter(ev.seq, h.address, ev.reason)
	case evAttachFailed:
		if !ev.refused {
			return ev.err
		}
		if !l.retired {
			// amqp:not-found, amqp:unauthorized-access (RabbitMQ ends the session),
			// ...: this address waits on its own backoff.
			f.hold(l, ev.err.Error(), f.u.cfg.BackoffMin)
			f.retire(l)
			f.u.log.Warn("address held", "target", target, "err", errors.Unwrap(ev.err), "retry_in", f.u.held.nextDueOf(target).Sub(f.u.clk.Now()).Round(time.Millisecond))
		}
	case evSendFailed:
		switch {
		case ev.stalled:
			// No credit on this link: hold the address, keep the others flowing.
			f.hold(l, fmt.Sprintf("no link credit from the cloud for %v", f.u.cfg.StallTimeout), f.u.cfg.BackoffMin)
		case ev.lost:
			return fmt.Errorf("send message %d to %q: %w", ev.seq, target, readable(ev.err))
		default:
			f.hold(l, "send: "+readable(ev.err).Error(), f.u.cfg.BackoffMin)
		}
		f.retire(l)
	case evOutcome:
		return f.outcome(l, ev)
	}
	return nil
}

// settled forgets the message seq handed to a lane, whatever became of it. When the
// last message dropped by a halted lane is back, an address the current pass
// skipped for it is read again.
func (f *forwarder) settled(seq uint64) inflightItem {
	h, ok := f.inflight[seq]
	if !ok {
		return h
	}
	delete(f.inflight, seq)
	l := h.lane
	l.handed--
	if h.gen != l.gen.Load() {
		if l.stale--; l.stale == 0 && f.pass.skip[l.address] && !f.u.held.held(l.target, f.u.clk.Now()) {
			f.pass.restart = true
		}
	}
	return h
}

// outcome acts on the outcome of a message the cloud settled (AMQP 1.0 §3.4), or
// on why none came.
func (f *forwarder) outcome(l *lane, ev event) error {
	target := l.target
	if ev.err != nil {
		// The outcome is unknown: the message stays stored and is sent again.
		switch {
		case errors.Is(ev.err, errStopped), errors.Is(ev.err, errLinkGone):
			return nil
		case ev.stalled:
			return fmt.Errorf("no outcome for message %d to %q within %v", ev.seq, target, f.u.cfg.StallTimeout)
		case ev.lost:
			return fmt.Errorf("outcome of message %d to %q: %w", ev.seq, target, readable(ev.err))
		}
		// The cloud ended this address's link or session.
		if !l.retired {
			f.hold(l, "link: "+readable(ev.err).Error(), f.u.cfg.BackoffMin)
			f.retire(l)
		}
		return nil
	}
	switch state := ev.state.(type) {
	case *amqp.StateAccepted:
		// §3.4.2: the cloud took responsibility; the message may leave the store.
		f.u.st.forwarded.Add(1)
		if f.u.debugging() {
			f.u.log.Debug("accepted", "seq", ev.seq, "target", target)
		}
		f.u.held.release(target, f.u.clk.Now())
		f.conn.markReady()
		f.queueOp(opDelete, ev.seq, func(op *storeOp) bool {
			if op.kind != opDelete || len(op.seqs) >= deleteBatch {
				return false
			}
			op.seqs = append(op.seqs, ev.seq)
			return true
		})
	case *amqp.StateRejected:
		// §3.4.3: the cloud will never take this message; keep it aside.
		f.deadLetter(ev.seq, target, "rejected by the cloud: "+describeError(state.Error))
	case *amqp.StateModified:
		// §3.4.5: not processed. delivery-failed counts an attempt (§3.2.1
		// delivery-count) and message-annotations are merged into the message's;
		// both are written to the store, so the copy sent next, also after a
		// restart, carries them. undeliverable-here keeps it off this connection;
		// otherwise the address is held like after a release.
		f.u.st.released.Add(1)
		f.u.log.Debug("modified", "seq", ev.seq, "target", target, "delivery_failed", state.DeliveryFailed, "undeliverable_here", state.UndeliverableHere)
		if state.DeliveryFailed || len(state.MessageAnnotations) > 0 {
			op := f.queueOp(opRewrite, ev.seq, nil)
			op.payload, op.state = ev.payload, state
		}
		if state.UndeliverableHere {
			f.undeliverable[ev.seq] = target
		} else {
			f.hold(l, "modified by the cloud", f.u.cfg.RetryDelay)
		}
	default:
		// §3.4.4 released, or settled without a terminal outcome: sent again after
		// RetryDelay (growing while the address keeps being released), after the
		// address's other messages in flight.
		f.u.st.released.Add(1)
		f.u.log.Debug("released", "seq", ev.seq, "target", target, "state", fmt.Sprint(state))
		f.hold(l, "released by the cloud", f.u.cfg.RetryDelay)
	}
	return nil
}

// deadLetter has the store worker move message seq aside with reason.
func (f *forwarder) deadLetter(seq uint64, address, reason string) {
	op := f.queueOp(opDeadLetter, seq, nil)
	op.address, op.reason = address, reason
}

// queueOp queues a store operation on seq for the store worker, or lets merge add
// seq to the last one not yet handed over; seq is busy until its commit. It
// returns the new operation, nil if merged.
func (f *forwarder) queueOp(kind opKind, seq uint64, merge func(*storeOp) bool) *storeOp {
	f.busy[seq] = struct{}{}
	if n := len(f.pending); n > 0 && merge != nil && merge(f.pending[n-1]) {
		return nil
	}
	op := &storeOp{kind: kind, seqs: []uint64{seq}}
	if kind == opDelete {
		op.seqs = make([]uint64, 1, 64)
		op.seqs[0] = seq
	}
	f.pending = append(f.pending, op)
	return op
}

// done acts on an operation the store worker finished: its seqs are no longer
// busy from the next read of the store on.
func (f *forwarder) done(op *storeOp) error {
	f.committed = append(f.committed, op.seqs...)
	switch op.kind {
	case opDelete:
		if op.err != nil {
			return fmt.Errorf("delete %d accepted messages: %w", len(op.seqs), op.err)
		}
	case opDeadLetter:
		if op.err != nil {
			return op.err
		}
	case opRewrite:
		if op.err != nil {
			f.u.log.Warn("could not record a modified outcome; the message is sent again unchanged", "seq", op.seqs[0], "err", op.err)
		}
	}
	return nil
}

// describeError renders an AMQP error (§2.8.14) as "condition: description".
func describeError(e *amqp.Error) string {
	if e == nil {
		return "no error given"
	}
	if e.Description == "" {
		return string(e.Condition)
	}
	return string(e.Condition) + ": " + e.Description
}
