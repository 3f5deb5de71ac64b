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
// another; each pipeline reads the store from the start, so it sees exactly the
// messages no earlier pipeline got accepted or dead-lettered.
//
// In a pipeline the sending goroutine reads the store, sends in Seq order with
// SendWithReceipt (so transfers leave in order while up to InFlight outcomes are
// outstanding) and queues the receipts; the settling goroutine waits for the outcomes
// in the same order and acts on them; a deleting goroutine deletes accepted messages
// in batches. links is owned by the sending goroutine while a pipeline runs and by the
// forwarder between pipelines.
type forwarder struct {
	u     *Uplink
	conn  *amqp.Conn
	sess  *amqp.Session
	links map[string]*amqp.Sender // by target address

	ready     atomic.Bool
	readyOnce sync.Once
}

// sent is a message on the wire, awaiting its outcome.
type sent struct {
	seq     uint64
	target  string
	receipt amqp.SendReceipt
}

// run runs pipelines until one fails or ctx ends.
func (f *forwarder) run(ctx context.Context) error {
	for {
		err := f.pipeline(ctx)
		switch {
		case errors.Is(err, errReleased):
			f.u.log.Info("cloud released messages; sending them again later", "retry_in", f.u.cfg.RetryDelay)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-f.conn.Done():
				return fmt.Errorf("connection lost: %w", readable(f.conn.Err()))
			case <-f.u.after(f.u.cfg.RetryDelay):
			}
		case errors.Is(err, errLinkLimit):
			f.u.log.Debug("closing all links", "links", len(f.links))
			if err := f.closeLinks(ctx); err != nil {
				return err
			}
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
		f.u.markConnected()
	})
}

// pipeline forwards until the store has been read to the end and more is awaited
// forever, a message is released (errReleased), a new link is needed beyond MaxLinks
// (errLinkLimit), something fails, or ctx ends (ctx.Err()). Before it returns, all
// its goroutines have exited and all deletes are committed.
func (f *forwarder) pipeline(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	queue := make(chan sent, f.u.cfg.InFlight)
	stop := make(chan struct{}) // closed by the settler: send nothing more
	del := startDeleter(f.u.src, cancel)

	var sendErr error
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		defer close(queue)
		sendErr = f.send(ctx, queue, stop)
	}()
	settleErr := f.settle(ctx, queue, stop, del)
	if settleErr != nil && !errors.Is(settleErr, errReleased) {
		cancel(settleErr)
	}
	<-sending
	delErr := del.close()

	// The first real failure wins; a stop reason only if nothing failed.
	for _, err := range []error{settleErr, sendErr, delErr} {
		if err != nil && !errors.Is(err, errReleased) && !errors.Is(err, errLinkLimit) && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if parent.Err() != nil {
		return parent.Err()
	}
	for _, err := range []error{settleErr, sendErr, delErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// send reads stored messages in order and sends them; see pipeline.
func (f *forwarder) send(ctx context.Context, queue chan<- sent, stop <-chan struct{}) error {
	var after uint64
	notify := f.u.src.Notify()
	batch := min(f.u.cfg.InFlight, 256)
	for {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
		}
		msgs, err := f.u.src.Read(after, batch)
		if ce := (*store.CorruptError)(nil); errors.As(err, &ce) {
			// The record cannot be decoded; keep it aside and go on after it.
			if err := f.deadLetter(ce.Seq, "", "corrupt record in the store: "+ce.Detail); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			f.markReady()
			select {
			case <-notify:
			case <-stop:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-f.conn.Done():
				return fmt.Errorf("connection lost: %w", readable(f.conn.Err()))
			}
			continue
		}
		for i := range msgs {
			select {
			case <-stop:
				return nil
			default:
			}
			if err := f.sendOne(ctx, &msgs[i], queue); err != nil {
				return err
			}
			after = msgs[i].Seq
		}
	}
}

// sendOne sends one stored message, or dead-letters it if it can never be sent.
func (f *forwarder) sendOne(ctx context.Context, m *store.Message, queue chan<- sent) error {
	out, err := prepare(m, f.u.cfg.AddressPrefix, f.u.now())
	if err != nil {
		return f.deadLetter(m.Seq, m.Address, err.Error())
	}
	snd, err := f.link(ctx, out.target)
	if err != nil {
		return err
	}
	if limit := snd.MaxMessageSize(); limit > 0 && uint64(out.size) > limit {
		return f.deadLetter(m.Seq, m.Address, fmt.Sprintf("message of %d bytes exceeds the cloud's max-message-size %d for %q", out.size, limit, out.target))
	}
	// §2.6.12: the transfer is unsettled; the cloud settles it with an outcome that
	// settle acts on. SendWithReceipt returns once the transfer is written, so the
	// order on the link is the order of these calls.
	sctx, cancel := context.WithTimeout(ctx, f.u.cfg.StallTimeout)
	receipt, err := snd.SendWithReceipt(sctx, out.msg, nil)
	cancel()
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case sctx.Err() != nil:
			return fmt.Errorf("send message %d to %q: no link credit from the cloud for %v", m.Seq, out.target, f.u.cfg.StallTimeout)
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

// link returns the cached sender for target, attaching one if needed.
func (f *forwarder) link(ctx context.Context, target string) (*amqp.Sender, error) {
	if snd, ok := f.links[target]; ok {
		return snd, nil
	}
	if len(f.links) >= f.u.cfg.MaxLinks {
		return nil, errLinkLimit
	}
	actx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	snd, err := f.sess.NewSender(actx, target, &amqp.SenderOptions{
		SettlementMode:              amqp.SenderSettleModeUnsettled.Ptr(),
		RequestedReceiverSettleMode: amqp.ReceiverSettleModeFirst.Ptr(),
		TargetDurability:            f.u.durability,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("attach sender to %q: %w", target, readable(err))
	}
	f.u.log.Debug("attached", "target", target)
	f.links[target] = snd
	return snd, nil
}

// closeLinks detaches all senders.
func (f *forwarder) closeLinks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	for target, snd := range f.links {
		delete(f.links, target)
		if err := snd.Close(ctx); err != nil {
			return fmt.Errorf("detach sender from %q: %w", target, readable(err))
		}
	}
	return nil
}

// settle waits for the outcomes of sent messages in order and acts on them (AMQP 1.0
// §3.4). After a release it asks send to stop, still settles what is in flight and
// returns errReleased. When ctx ends it keeps waiting up to shutdownGrace, so that
// messages the cloud accepted are deleted rather than sent again.
func (f *forwarder) settle(ctx context.Context, queue <-chan sent, stop chan<- struct{}, del *deleter) error {
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancelWait) })()

	released := false
	for s := range queue {
		sctx, cancel := context.WithTimeout(wctx, f.u.cfg.StallTimeout)
		state, err := s.receipt.Wait(sctx)
		cancel()
		if err != nil {
			// The outcome is unknown: the message stays stored and is sent again.
			switch {
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case sctx.Err() != nil && wctx.Err() == nil:
				return fmt.Errorf("no outcome for message %d to %q within %v", s.seq, s.target, f.u.cfg.StallTimeout)
			}
			return fmt.Errorf("outcome of message %d to %q: %w", s.seq, s.target, readable(err))
		}
		f.u.st.inFlight.Add(-1)
		switch state := state.(type) {
		case *amqp.StateAccepted:
			// §3.4.2: the cloud took responsibility; the message may leave the store.
			f.u.st.forwarded.Add(1)
			f.u.log.Debug("accepted", "seq", s.seq, "target", s.target)
			f.markReady()
			del.add(s.seq)
		case *amqp.StateRejected:
			// §3.4.3: the cloud will never take this message; keep it aside.
			if err := f.deadLetter(s.seq, s.target, "rejected by the cloud: "+describeError(state.Error)); err != nil {
				return err
			}
		case *amqp.StateReleased, *amqp.StateModified:
			// §3.4.4, §3.4.5: not processed; it may be sent again. The message stays
			// stored and the next pipeline sends it again, after RetryDelay. (Modified's
			// delivery-failed and annotations are not applied to the stored copy.)
			f.u.st.released.Add(1)
			f.u.log.Debug("released", "seq", s.seq, "target", s.target, "outcome", fmt.Sprint(state))
			if !released {
				released = true
				close(stop)
			}
		default:
			// A settled delivery without a terminal outcome: treat it like released.
			f.u.st.released.Add(1)
			f.u.log.Debug("no outcome", "seq", s.seq, "target", s.target, "state", fmt.Sprint(state))
			if !released {
				released = true
				close(stop)
			}
		}
	}
	if released {
		return errReleased
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

// deleter deletes accepted messages from the store in batches, in its own goroutine,
// so that the store's commits (an fsync each) do not hold up settling.
type deleter struct {
	src  Source
	seqs chan uint64
	done chan struct{}
	err  error // first Delete error; read after done is closed
}

const deleteBatch = 1024

func startDeleter(src Source, fail context.CancelCauseFunc) *deleter {
	d := &deleter{src: src, seqs: make(chan uint64, deleteBatch), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		batch := make([]uint64, 0, deleteBatch)
		for seq := range d.seqs {
			batch = append(batch[:0], seq)
		more:
			for len(batch) < deleteBatch {
				select {
				case seq, ok := <-d.seqs:
					if !ok {
						break more
					}
					batch = append(batch, seq)
				default:
					break more
				}
			}
			if d.err != nil {
				continue // drain; the pipeline is stopping
			}
			if err := d.src.Delete(batch...); err != nil {
				d.err = fmt.Errorf("delete %d accepted messages: %w", len(batch), err)
				fail(d.err)
			}
		}
	}()
	return d
}

// add queues seq for deletion; it blocks while deleteBatch seqs wait.
func (d *deleter) add(seq uint64) { d.seqs <- seq }

// close waits until every queued seq was deleted and returns the first error.
func (d *deleter) close() error {
	close(d.seqs)
	<-d.done
	return d.err
}
