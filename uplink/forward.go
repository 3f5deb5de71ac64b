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

// forwarder forwards messages over one connection. It runs pipelines one after
// another; each pipeline reads the store from the start with a fresh cursor, so it
// sees exactly the messages no earlier pipeline got accepted or dead-lettered.
//
// In a pipeline the sending goroutine reads the store with ReadNext (routes by
// priority, each in Seq order), sends in that order with
// SendWithReceipt (so transfers leave in order while up to InFlight outcomes are
// outstanding) and queues the receipts; it skips the messages of held addresses
// (see holds) and those the cloud called undeliverable on this connection. The
// settling goroutine waits for the outcomes in the same order and acts on them; a
// deleting goroutine deletes accepted messages in batches. A pipeline ends, after its
// outcomes arrived, when a held address is due again, so that the next one sends
// its messages.
//
// Each target address has its own session and sender link (RabbitMQ ends the whole
// session when it refuses a link). links is owned by the sending goroutine while a
// pipeline runs and by the forwarder between pipelines; broken and undeliverable are
// shared, under mu.
type forwarder struct {
	u           *Uplink
	conn        *amqp.Conn
	idx         int    // endpoint index
	fingerprint string // of the client certificate, for the log
	links       map[string]*link

	mu            sync.Mutex
	broken        map[string]bool   // targets whose link failed; re-attached before use
	undeliverable map[uint64]string // seq → target: modified with undeliverable-here

	wake chan struct{} // capacity 1: the settler held an address or marked a message

	ready     atomic.Bool
	readyOnce sync.Once
}

// readBatch is the most messages read from the store at once.
const readBatch = 256

// link is the session and sender for one target address.
type link struct {
	sess *amqp.Session
	snd  *amqp.Sender
}

// sent is a message on the wire, awaiting its outcome.
type sent struct {
	seq     uint64
	target  string
	receipt amqp.SendReceipt
}

// run runs pipelines until one fails, ctx ends, or the connection should be replaced.
func (f *forwarder) run(ctx context.Context) error {
	f.wake = make(chan struct{}, 1)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		for target, l := range f.links {
			delete(f.links, target)
			_ = l.sess.Close(cctx)
		}
	}()
	for {
		err := f.pipeline(ctx)
		switch {
		case errors.Is(err, errRetry):
			// A held address is due: read the store again from the start.
		case errors.Is(err, errLinkLimit):
			f.u.log.Debug("closing all links", "links", len(f.links))
			if err := f.closeLinks(ctx); err != nil {
				return err
			}
		case errors.Is(err, errUndeliverable):
			// §3.4.5: the cloud will not take these messages on this link endpoint;
			// everything else was sent. Try them on a new connection, on the next
			// endpoint if there is one.
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-f.conn.Done():
				return fmt.Errorf("connection lost: %w", readable(f.conn.Err()))
			case <-f.u.after(f.u.cfg.RetryDelay):
			}
			return &switchEndpoint{index: (f.idx + 1) % len(f.u.endpoints), reason: fmt.Sprintf("%d messages are undeliverable here", f.undeliverableCount())}
		case err == nil:
			return errors.New("forwarding stopped") // not reached: a pipeline always has a reason
		default:
			return err
		}
	}
}

// markReady records, once, that the connection works: a message was accepted, or
// everything stored was sent and the uplink is waiting for more.
func (f *forwarder) markReady() {
	f.readyOnce.Do(func() {
		f.ready.Store(true)
		f.u.markConnected(f.idx, f.fingerprint)
	})
}

func (f *forwarder) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// hold holds target with reason on its own backoff and wakes the sender.
func (f *forwarder) hold(target, reason string, min time.Duration) {
	until := f.u.held.hold(target, reason, f.u.now(), min, max(f.u.cfg.BackoffMax, min))
	f.u.log.Debug("address held", "target", target, "reason", reason, "until", until)
	f.signal()
}

func (f *forwarder) markBroken(target string) {
	f.mu.Lock()
	if f.broken == nil {
		f.broken = map[string]bool{}
	}
	f.broken[target] = true
	f.mu.Unlock()
}

// takeBroken reports whether target's link failed, and forgets it.
func (f *forwarder) takeBroken(target string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.broken[target]
	delete(f.broken, target)
	return b
}

func (f *forwarder) markUndeliverable(seq uint64, target string) {
	f.mu.Lock()
	if f.undeliverable == nil {
		f.undeliverable = map[uint64]string{}
	}
	f.undeliverable[seq] = target
	f.mu.Unlock()
	f.signal()
}

func (f *forwarder) isUndeliverable(seq uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.undeliverable[seq]
	return ok
}

func (f *forwarder) undeliverableCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.undeliverable)
}

// connLost reports whether err, from a link or session, means the whole connection
// is gone. A link or session error on a live connection concerns one address only.
func (f *forwarder) connLost(err error) bool {
	if ce := (*amqp.ConnError)(nil); errors.As(err, &ce) {
		return true
	}
	select {
	case <-f.conn.Done():
		return true
	case <-time.After(100 * time.Millisecond): // the connection's error may trail the link's
		select {
		case <-f.conn.Done():
			return true
		default:
			return false
		}
	}
}

// pipeline forwards until the store has been read to the end and more is awaited
// forever, a held address is due (errRetry), a new link is needed beyond MaxLinks
// (errLinkLimit), only undeliverable messages are left (errUndeliverable), something
// fails, or ctx ends. Before it returns, all its goroutines have exited and all
// deletes are committed.
func (f *forwarder) pipeline(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	queue := make(chan sent, f.u.cfg.InFlight)
	del := startDeleter(f.u.src, cancel)

	var sendErr error
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		defer close(queue)
		sendErr = f.send(ctx, queue)
	}()
	settleErr := f.settle(ctx, queue, del)
	if settleErr != nil {
		cancel(settleErr)
	}
	<-sending
	delErr := del.close()

	stopReason := func(err error) bool {
		return errors.Is(err, errRetry) || errors.Is(err, errLinkLimit) || errors.Is(err, errUndeliverable) || errors.Is(err, context.Canceled)
	}
	// The first real failure wins; a stop reason only if nothing failed.
	for _, err := range []error{settleErr, sendErr, delErr} {
		if err != nil && !stopReason(err) {
			return err
		}
	}
	if parent.Err() != nil {
		return context.Cause(parent)
	}
	for _, err := range []error{settleErr, sendErr, delErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// send reads stored messages by route priority and sends them; see pipeline.
func (f *forwarder) send(ctx context.Context, queue chan<- sent) error {
	var cur store.Cursor // a fresh one: read the store from the start
	var due time.Time    // the earliest time a hold seen in this pipeline ends
	notify := f.u.src.Notify()
	batch := min(f.u.cfg.InFlight, readBatch)
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
		}
		now := f.u.now()
		if d := f.u.held.nextDue(now); !d.IsZero() && (due.IsZero() || d.Before(due)) {
			due = d
		}
		if !due.IsZero() && !now.Before(due) {
			return errRetry
		}
		msgs, err := f.u.src.ReadNext(&cur, batch)
		if ce := (*store.CorruptError)(nil); errors.As(err, &ce) {
			// The record cannot be decoded; keep it aside. ReadNext may have moved the
			// cursor past messages before it that it did not return, so read the store
			// again from the start once the outcomes in flight arrived.
			if err := f.deadLetter(ce.Seq, "", "corrupt record in the store: "+ce.Detail); err != nil {
				return err
			}
			return errRetry
		}
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			if f.undeliverableCount() > 0 {
				return errUndeliverable
			}
			f.markReady()
			var timer <-chan time.Time
			if !due.IsZero() {
				timer = f.u.after(due.Sub(now))
			}
			select {
			case <-notify:
			case <-f.wake:
			case <-timer:
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-f.conn.Done():
				return fmt.Errorf("connection lost: %w", readable(f.conn.Err()))
			}
			continue
		}
		for i := range msgs {
			if err := f.sendOne(ctx, &msgs[i], queue); err != nil {
				return err
			}
		}
	}
}

// sendOne sends one stored message, dead-letters it if it can never be sent, or
// leaves it stored if its address is held or it is undeliverable here.
func (f *forwarder) sendOne(ctx context.Context, m *store.Message, queue chan<- sent) error {
	target := f.u.cfg.AddressPrefix + m.Address
	if m.Address != "" && f.u.held.held(target, f.u.now()) || f.isUndeliverable(m.Seq) {
		return nil
	}
	out, err := prepare(m, f.u.cfg.AddressPrefix, "shadowgw:"+f.u.cfg.ContainerID+":", f.u.now())
	if err != nil {
		return f.deadLetter(m.Seq, m.Address, err.Error())
	}
	if n := f.u.failures(m.Seq, false); n > 0 {
		// §3.4.5: delivery-failed counts as a delivery attempt (§3.2.1 delivery-count).
		if out.msg.Header == nil {
			out.msg.Header = &amqp.MessageHeader{}
		}
		out.msg.Header.DeliveryCount += n
	}
	snd, err := f.link(ctx, out.target)
	if errors.Is(err, errHeld) {
		return nil
	}
	if err != nil {
		return err
	}
	if limit := snd.MaxMessageSize(); limit > 0 && uint64(out.size) > limit {
		return f.deadLetter(m.Seq, m.Address, fmt.Sprintf("message of %d bytes exceeds the cloud's max-message-size %d for %q", out.size, limit, out.target))
	}
	if err := f.u.limit.wait(ctx, out.size); err != nil {
		return err
	}
	// §2.6.12: the transfer is unsettled; the cloud settles it with an outcome that
	// settle acts on. SendWithReceipt returns once the transfer is written, so the
	// order on the link is the order of these calls.
	sctx, cancel := context.WithTimeout(ctx, f.u.cfg.StallTimeout)
	receipt, err := snd.SendWithReceipt(sctx, out.msg, nil)
	stalled := errors.Is(sctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case stalled:
			// No credit on this link: hold the address, keep the others flowing.
			f.hold(out.target, fmt.Sprintf("no link credit from the cloud for %v", f.u.cfg.StallTimeout), f.u.cfg.BackoffMin)
			f.dropLink(ctx, out.target)
			return nil
		case !f.connLost(err):
			f.hold(out.target, "send: "+readable(err).Error(), f.u.cfg.BackoffMin)
			f.dropLink(ctx, out.target)
			return nil
		}
		return fmt.Errorf("send message %d to %q: %w", m.Seq, out.target, readable(err))
	}
	f.u.st.inFlight.Add(1)
	f.u.log.Debug("sent", "seq", m.Seq, "target", out.target, "bytes", out.size)
	select {
	case queue <- sent{seq: m.Seq, target: out.target, receipt: receipt}:
		return nil
	case <-ctx.Done():
		f.u.st.inFlight.Add(-1)
		return context.Cause(ctx)
	}
}

// link returns the sender for target, beginning a session and attaching a link if
// needed. If the cloud refuses them on a live connection, target is held and link
// returns errHeld.
func (f *forwarder) link(ctx context.Context, target string) (*amqp.Sender, error) {
	if l, ok := f.links[target]; ok {
		if !f.takeBroken(target) {
			return l.snd, nil
		}
		f.dropLink(ctx, target)
	}
	if len(f.links) >= f.u.cfg.MaxLinks {
		return nil, errLinkLimit
	}
	actx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	sess, err := f.conn.NewSession(actx, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("begin session for %q: %w", target, readable(err))
	}
	snd, err := sess.NewSender(actx, target, &amqp.SenderOptions{
		SettlementMode:              amqp.SenderSettleModeUnsettled.Ptr(),
		RequestedReceiverSettleMode: amqp.ReceiverSettleModeFirst.Ptr(),
		TargetDurability:            f.u.durability,
	})
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = sess.Close(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if !f.connLost(err) {
			// amqp:not-found, amqp:unauthorized-access (RabbitMQ ends the session),
			// ...: this address waits on its own backoff.
			f.hold(target, "attach: "+readable(err).Error(), f.u.cfg.BackoffMin)
			f.u.log.Warn("address held", "target", target, "err", readable(err), "retry_in", time.Until(f.u.held.nextDueOf(target)).Round(time.Millisecond))
			return nil, errHeld
		}
		return nil, fmt.Errorf("attach sender to %q: %w", target, readable(err))
	}
	f.u.log.Debug("attached", "target", target)
	f.links[target] = &link{sess: sess, snd: snd}
	return snd, nil
}

// dropLink ends target's session, if any, without waiting long: it failed already.
func (f *forwarder) dropLink(ctx context.Context, target string) {
	l, ok := f.links[target]
	if !ok {
		return
	}
	delete(f.links, target)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = l.sess.Close(cctx)
}

// closeLinks ends all sessions and their links.
func (f *forwarder) closeLinks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	for target, l := range f.links {
		delete(f.links, target)
		if err := l.sess.Close(ctx); err != nil && f.connLost(err) {
			return fmt.Errorf("end session of %q: %w", target, readable(err))
		}
	}
	return nil
}

// settle waits for the outcomes of sent messages in order and acts on them (AMQP 1.0
// §3.4). When ctx ends it keeps waiting up to shutdownGrace, so that messages the
// cloud accepted are deleted rather than sent again.
func (f *forwarder) settle(ctx context.Context, queue <-chan sent, del *deleter) error {
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancelWait) })()

	for s := range queue {
		sctx, cancel := context.WithTimeout(wctx, f.u.cfg.StallTimeout)
		state, err := s.receipt.Wait(sctx)
		cancel()
		if err != nil {
			// The outcome is unknown: the message stays stored and is sent again.
			switch {
			case ctx.Err() != nil && wctx.Err() != nil:
				return context.Cause(ctx)
			case sctx.Err() != nil && wctx.Err() == nil:
				return fmt.Errorf("no outcome for message %d to %q within %v", s.seq, s.target, f.u.cfg.StallTimeout)
			case !f.connLost(err):
				// The cloud ended this address's link or session.
				f.u.st.inFlight.Add(-1)
				f.hold(s.target, "link: "+readable(err).Error(), f.u.cfg.BackoffMin)
				f.markBroken(s.target)
				continue
			}
			return fmt.Errorf("outcome of message %d to %q: %w", s.seq, s.target, readable(err))
		}
		f.u.st.inFlight.Add(-1)
		switch state := state.(type) {
		case *amqp.StateAccepted:
			// §3.4.2: the cloud took responsibility; the message may leave the store.
			f.u.st.forwarded.Add(1)
			f.u.log.Debug("accepted", "seq", s.seq, "target", s.target)
			f.u.failures(s.seq, true)
			f.u.held.release(s.target, f.u.now())
			f.markReady()
			del.add(s.seq)
		case *amqp.StateRejected:
			// §3.4.3: the cloud will never take this message; keep it aside.
			f.u.failures(s.seq, true)
			if err := f.deadLetter(s.seq, s.target, "rejected by the cloud: "+describeError(state.Error)); err != nil {
				return err
			}
		case *amqp.StateModified:
			// §3.4.5: not processed. delivery-failed counts an attempt in the copy sent
			// next; undeliverable-here keeps it off this connection; otherwise the
			// address is held like after a release.
			f.u.st.released.Add(1)
			f.u.log.Debug("modified", "seq", s.seq, "target", s.target, "delivery_failed", state.DeliveryFailed, "undeliverable_here", state.UndeliverableHere)
			if state.DeliveryFailed {
				f.u.deliveryFailed(s.seq)
			}
			if state.UndeliverableHere {
				f.markUndeliverable(s.seq, s.target)
			} else {
				f.hold(s.target, "modified by the cloud", f.u.cfg.RetryDelay)
			}
		default:
			// §3.4.4 released, or settled without a terminal outcome: sent again after
			// RetryDelay (growing while the address keeps being released), after the
			// address's other messages in flight.
			f.u.st.released.Add(1)
			f.u.log.Debug("released", "seq", s.seq, "target", s.target, "state", fmt.Sprint(state))
			f.hold(s.target, "released by the cloud", f.u.cfg.RetryDelay)
		}
	}
	return nil
}

// deadLetter moves a message aside with reason. A message already gone (deleted or
// dead-lettered before) is not an error.
func (f *forwarder) deadLetter(seq uint64, address, reason string) error {
	err := f.u.src.DeadLetter(seq, reason)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("dead-letter message %d: %w", seq, err)
	}
	f.u.st.deadLettered.Add(1)
	f.u.deadLetterLog(seq, address, reason)
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
