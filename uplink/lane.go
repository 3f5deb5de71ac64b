package uplink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// lane sends the messages of one target address on the address's own session and
// sender link (RabbitMQ ends the whole session when it refuses a link, so a refusal
// concerns one address only). Its sending goroutine attaches the link, then sends
// the messages in the order the owner handed them over; its settling goroutine
// awaits their outcomes in the same order. Both only report to the owner (see
// forwarder), on its events channel: they never decide what a result means. An
// address the cloud gives no link credit so holds up only its own lane.
//
// A lane lives as long as its link: until the link fails, the connection ends, or
// the owner retires it (closing queue). The owner drops what the lane has queued
// and not yet sent by moving gen on: the sender reports such items as dropped,
// unsent; they stay stored.
type lane struct {
	f       *forwarder
	target  string    // the cloud's address
	address string    // the stored one
	queue   chan item // owner → sender; closed by the owner to retire the lane
	// gen is the lane's generation, moved on by the owner; items handed over in an
	// older one are dropped unsent.
	gen atomic.Int64
	// watch is set by the owner that passed the address by: the sender reports
	// evCaughtUp when it next finds its queue empty.
	watch atomic.Bool

	// Written by the sender, read by the owner's pass-by rule (see slowLeft).
	busySince atomic.Int64 // Unix ns since the sender waits for the cloud (attach, credit); 0: it does not
	waited    atomic.Int64 // ns the sender waited for the cloud since its queue was last empty
	emptied   atomic.Int64 // counts the times the sender found its queue empty

	// Owned by the owner.
	handed      int           // items handed over and not yet settled or dropped
	stale       int           // of them, those handed in an older generation
	passed      bool          // passed by: later messages stay stored until it catches up
	retired     bool          // queue closed
	fullWaited  time.Duration // the owner's wait for room in queue since emptiedSeen
	emptiedSeen int64

	// Owned by the sender, then the settler.
	link *link
	// Owned by the sender: bounds its wait for link credit to StallTimeout.
	stall *deadline
	// idPrefix is the message-id prefix of messages without one (see prepare).
	idPrefix string
	// ann is the sender's message-annotations map for messages that have none:
	// go-amqp encodes a message within Send and keeps no reference to it, so one
	// map serves every such message (a map costs about 300 bytes).
	ann amqp.Annotations
}

// item is a stored message handed to a lane in generation gen.
type item struct {
	m   *storedMessage
	gen int64
}

// sent is a message on the wire, awaiting its outcome.
type sent struct {
	seq     uint64
	payload []byte // as stored, for a modified outcome to rewrite
	tokens  int    // of the window, given back with the outcome
	receipt amqp.SendReceipt
}

// link is the session and sender for one target address.
type link struct {
	sess *amqp.Session
	snd  *amqp.Sender
}

// slowWait is the shortest wait for the cloud (an attach, link credit) that counts
// towards passing a lane by: shorter ones are the usual cost of a send, also when
// the connection is busy, and not something the other addresses should get around.
const slowWait = 10 * time.Millisecond

// startLane starts the lane of target; the owner learns of its end by evLaneDone.
func (f *forwarder) startLane(target, address string) *lane {
	l := &lane{f: f, target: target, address: address, queue: make(chan item, min(f.u.cfg.InFlight, laneQueue)),
		idPrefix: "shadowgw:" + f.u.cfg.ContainerID + ":"}
	receipts := make(chan sent, f.u.cfg.InFlight)
	f.lanes[target] = l
	f.running++
	go l.sendAll(receipts)
	go l.settleAll(receipts)
	return l
}

func (l *lane) report(ev event) {
	ev.lane = l
	l.f.events <- ev
}

func (l *lane) busy(on bool) {
	now := l.f.u.clk.Now().UnixNano()
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

// sendAll sends the queued items until the queue is closed. After a failure of
// its link it reports the rest as dropped.
func (l *lane) sendAll(receipts chan<- sent) {
	defer close(receipts)
	l.stall = newDeadline(l.f.sending, l.f.u.cfg.StallTimeout)
	defer l.stall.close()
	dead := false
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-l.queue:
		default:
			// The lane caught up with the owner: what it waited for so far no
			// longer holds anyone up.
			l.waited.Store(0)
			l.emptied.Add(1)
			if l.watch.Swap(false) {
				l.report(event{kind: evCaughtUp})
			}
			it, ok = <-l.queue
		}
		if !ok {
			return
		}
		if dead || it.gen != l.gen.Load() || l.f.sending.Err() != nil {
			l.report(event{kind: evDropped, seq: it.m.Seq})
			continue
		}
		if ev, failed := l.send(it.m, receipts); ev.kind != evNone {
			dead = dead || failed
			l.report(ev)
		}
	}
}

// send sends one stored message. It returns what the owner must know when the
// message did not go on the wire, and whether the lane's link is unusable.
func (l *lane) send(m *storedMessage, receipts chan<- sent) (ev event, failed bool) {
	f := l.f
	if l.ann == nil {
		l.ann = make(amqp.Annotations, 1)
	}
	clear(l.ann)
	out, err := prepare(m, l.target, l.idPrefix, f.u.cfg.sourceKey(), f.u.clk.Now(), l.ann)
	if err != nil {
		return event{kind: evUnsendable, seq: m.Seq, reason: err.Error()}, false
	}
	if l.link == nil {
		l.busy(true)
		var refused bool
		l.link, refused, err = f.attach(f.sending, l.target)
		l.busy(false)
		switch {
		case err != nil && f.sending.Err() != nil:
			return event{kind: evDropped, seq: m.Seq}, true
		case err != nil:
			return event{kind: evAttachFailed, seq: m.Seq, err: err, refused: refused}, true
		}
	}
	snd := l.link.snd
	tokens := f.window.cost(len(m.Payload))
	if !f.window.take(tokens, f.sending.Done()) {
		return event{kind: evDropped, seq: m.Seq}, false
	}
	if err := f.u.limit.wait(f.sending, out.size); err != nil {
		f.window.give(tokens)
		return event{kind: evDropped, seq: m.Seq}, false
	}
	// §2.6.12: the transfer is unsettled; the cloud settles it with an outcome that
	// the settling goroutine awaits. SendWithReceipt returns once the transfer is
	// written, so the order on the link is the order of these calls. It waits for
	// link credit (§2.6.7) first: up to StallTimeout, and only this lane waits.
	l.busy(true)
	receipt, err := snd.SendWithReceipt(l.stall.start(), out.msg, nil)
	l.busy(false)
	stalled := l.stall.stop()
	if err != nil {
		f.window.give(tokens)
		switch {
		case !stalled && f.sending.Err() == nil && unsendable(err, out.msg):
			// Nothing was written: the link is still good for the next message.
			reason := "cannot encode message: " + err.Error()
			if limit := snd.MaxMessageSize(); limit > 0 && isSizeExceeded(err) {
				reason = fmt.Sprintf("message exceeds the cloud's max-message-size %d for %q (about %d bytes)", limit, out.target, out.size)
			}
			return event{kind: evUnsendable, seq: m.Seq, reason: reason}, false
		case f.sending.Err() != nil:
			// go-amqp checks ctx before each frame: a message of several frames may
			// be cut off midway, a partial delivery (§2.6.14) no later send may
			// continue on. The link is not used again.
			return event{kind: evDropped, seq: m.Seq}, true
		case stalled:
			return event{kind: evSendFailed, seq: m.Seq, stalled: true}, true
		}
		return event{kind: evSendFailed, seq: m.Seq, err: err, lost: f.conn.lost(err)}, true
	}
	f.u.st.inFlight.Add(1)
	if f.u.debugging() {
		f.u.log.Debug("sent", "seq", m.Seq, "target", out.target, "bytes", out.size)
	}
	receipts <- sent{seq: m.Seq, payload: m.Payload, tokens: tokens, receipt: receipt} // never blocks: a token is held
	return event{}, false
}

// settleBatch and settleBatchDelay bound how many outcomes a settling goroutine
// reports at once, and how long it keeps the first of them: while outcomes come
// quickly, the owner is woken once for many, and their deletes are batched.
const (
	settleBatch      = 64
	settleBatchDelay = time.Millisecond
)

// settleAll awaits the outcomes of the lane's messages in order and reports them,
// in batches (see settleBatch); then it ends the lane's session and reports that
// the lane is done. While the forwarder stops, it still waits up to
// shutdownGrace, so that messages the cloud accepted are deleted rather than sent
// again.
func (l *lane) settleAll(receipts <-chan sent) {
	f := l.f
	linkGone := false
	stall := newDeadline(f.wctx, f.u.cfg.StallTimeout) // bounds each wait for an outcome
	defer stall.close()
	var batch []event
	var bctx context.Context // ends settleBatchDelay after the first outcome in batch
	bcancel := context.CancelFunc(func() {})
	flush := func() {
		if len(batch) > 0 {
			l.report(event{kind: evOutcomes, outcomes: batch})
			batch = nil // the owner returns it to batches
		}
		bcancel()
		bctx = nil
	}
	for s := range receipts {
		ev := event{kind: evOutcome, seq: s.seq, payload: s.payload}
		if linkGone {
			ev.err = errLinkGone // the outcome is unknown; the message stays stored
		} else {
			waited := false
			if bctx != nil {
				// An outcome that is in already is reported with the batch.
				ev.state, ev.err = s.receipt.Wait(bctx)
				if ev.err != nil && bctx.Err() != nil && f.wctx.Err() == nil {
					flush() // the batch is due; this one may take long
					ev.err = nil
				} else {
					waited = true
					l.outcomeErr(&ev, false)
				}
			}
			if !waited {
				ev.state, ev.err = s.receipt.Wait(stall.start())
				l.outcomeErr(&ev, stall.stop())
			}
			linkGone = ev.err != nil && !errors.Is(ev.err, errStopped) && !ev.stalled
		}
		f.u.st.inFlight.Add(-1)
		f.window.give(s.tokens)
		if bctx == nil {
			bctx, bcancel = batchContext(f.wctx)
		}
		if batch == nil {
			batch = getBatch()
		}
		batch = append(batch, ev)
		if len(receipts) == 0 || len(batch) >= settleBatch {
			flush()
		}
	}
	flush()
	if l.link != nil {
		closeSession(l.link)
	}
	l.report(event{kind: evLaneDone})
}

// batches recycles the slices of evOutcomes events: a settling goroutine takes one,
// the owner puts it back once it acted on the outcomes (a batch grown by append for
// every report cost about 300 bytes per message).
var batches = sync.Pool{New: func() any { s := make([]event, 0, settleBatch); return &s }}

func getBatch() []event { return (*batches.Get().(*[]event))[:0] }

func putBatch(b []event) {
	if cap(b) != settleBatch {
		return
	}
	clear(b[:cap(b)]) // no references to payloads and states kept
	b = b[:0]
	batches.Put(&b)
}

// batchContext returns the context of a batch of outcomes; flush cancels it.
func batchContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, settleBatchDelay)
}

// outcomeErr classifies the error of a wait for ev's outcome, if any: the
// forwarder stopping, no outcome within StallTimeout (stalled), or the link or the
// connection gone.
func (l *lane) outcomeErr(ev *event, stalled bool) {
	switch {
	case ev.err == nil:
	case l.f.wctx.Err() != nil:
		ev.err = errStopped
	case stalled:
		ev.stalled = true
	default:
		ev.lost = l.f.conn.lost(ev.err)
	}
}

// attach begins a session and attaches a sender link to target (§2.5.1, §2.6.3).
// refused reports that the cloud refused the link on a live connection
// (amqp:not-found, amqp:unauthorized-access, ...): a matter of this address only.
func (f *forwarder) attach(ctx context.Context, target string) (l *link, refused bool, err error) {
	actx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	sess, err := f.conn.newSession(actx)
	if err != nil {
		return nil, false, fmt.Errorf("begin session for %q: %w", target, readable(err))
	}
	// No settlement mode is requested (§2.7.3: the attach then says mixed and first,
	// the defaults). go-amqp refuses a link whose answered mode differs from one it
	// requested, and a broker may legally answer mixed (rhea does) or second. Every
	// message is still sent unsettled and waits for its outcome: in mode mixed go-amqp
	// sends unsettled unless told otherwise, and SendWithReceipt fails, sending nothing,
	// on a link the broker made settled.
	snd, err := sess.NewSender(actx, target, &amqp.SenderOptions{
		TargetDurability: f.u.durability,
	})
	if err != nil {
		closeSession(&link{sess: sess})
		if ctx.Err() != nil || f.conn.lost(err) {
			return nil, false, fmt.Errorf("attach sender to %q: %w", target, readable(err))
		}
		return nil, true, fmt.Errorf("attach: %w", readable(err))
	}
	f.u.log.Debug("attached", "target", target)
	return &link{sess: sess, snd: snd}, false, nil
}

// closeSession ends l's session without waiting long: it failed already, or is
// being replaced.
func closeSession(l *link) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.sess.Close(ctx)
}
