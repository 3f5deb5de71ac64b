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
// A pipeline has one reading goroutine and, per target address, a lane: a sending
// and a settling goroutine (see lane). The reader reads the store with ReadNext
// (routes by priority, each in Seq order) and hands each message to its target's
// lane; it skips the messages of held addresses, those the cloud called
// undeliverable on this connection, and those of an address it passed by (see
// pipeline.dispatch). A lane sends its messages in the order it got them, so the
// order within an address is kept, while an address without link credit holds up
// only its own lane. A deleting goroutine deletes accepted messages in batches. A
// pipeline ends, after its outcomes arrived, when a held address is due again or
// an address it passed by can go on, so that the next one sends their messages.
//
// Each target address has its own session and sender link (RabbitMQ ends the whole
// session when it refuses a link); links outlive pipelines. links, attaching,
// broken and undeliverable are shared by the lanes, under mu.
type forwarder struct {
	u           *Uplink
	conn        *amqp.Conn
	idx         int    // endpoint index
	fingerprint string // of the client certificate, for the log

	mu            sync.Mutex
	links         map[string]*link
	attaching     int               // links being attached, counted against MaxLinks
	broken        map[string]bool   // targets whose link failed; re-attached before use
	undeliverable map[uint64]string // seq → target: modified with undeliverable-here

	wake chan struct{} // capacity 1: a lane held an address, marked a message or went idle

	// holdEnd is when the earliest hold made in the current pipeline ends, in Unix
	// ns; 0: none. The reader ends the pipeline then. Unlike the hold itself, an
	// accepted message does not clear it, so a hold that begins and ends while the
	// reader waits for a lane is not missed.
	holdEnd atomic.Int64

	ready     atomic.Bool
	readyOnce sync.Once
}

// readBatch is the most messages read from the store at once.
const readBatch = 256

// laneQueue is the most messages waiting in one lane to be sent.
const laneQueue = 64

// creditWait is how long the reader waits for a lane that is busy with the cloud
// (attaching its link, or waiting for link credit) before it passes the lane's
// address by for the rest of the pipeline, so that other addresses go on.
const creditWait = 500 * time.Millisecond

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
			// Read the store again from the start.
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

// hold holds target with reason on its own backoff and wakes the reader.
func (f *forwarder) hold(target, reason string, min time.Duration) {
	until := f.u.held.hold(target, reason, f.u.now(), min, max(f.u.cfg.BackoffMax, min))
	f.u.log.Debug("address held", "target", target, "reason", reason, "until", until)
	for end := until.UnixNano(); ; {
		old := f.holdEnd.Load()
		if old != 0 && old <= end || f.holdEnd.CompareAndSwap(old, end) {
			break
		}
	}
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

// pipeline is one pass over the store; see forwarder.
//
// It ends in one of two ways. A failure (the connection lost, the store failing, an
// outcome overdue) cancels ctx: everything stops, and the settling goroutines wait
// for outcomes only up to shutdownGrace. A stop reason (errRetry, errLinkLimit,
// errUndeliverable) cancels only sending: the reader and the lanes' senders stop,
// messages not yet sent stay stored, and the settlers wait for every outcome in
// flight. ctx's cause is the first failure, sending's the first reason to stop.
type pipeline struct {
	f       *forwarder
	ctx     context.Context // ends at a failure
	fail    context.CancelCauseFunc
	sending context.Context // ends at a failure or a stop reason
	stop    context.CancelCauseFunc
	wctx    context.Context // for awaiting outcomes: ends shutdownGrace after ctx

	tokens chan struct{} // one per message in flight: at most InFlight
	del    *deleter

	// pending counts the messages handed to lanes and not yet sent, dead-lettered or
	// dropped; when it falls to zero the lanes are idle and the reader is woken.
	pending   atomic.Int64
	needLinks atomic.Bool // a lane found MaxLinks links open

	// Owned by the reader.
	lanes  map[string]*lane
	passed map[string]bool // targets whose later messages stay stored in this pipeline
	timer  *time.Timer
	due    time.Time // the earliest time a hold seen in this pipeline ends; zero: none

	wg sync.WaitGroup // the lanes' goroutines
}

// pipeline forwards until the store has been read to the end and more is awaited
// forever, a held address is due or a passed-by address can go on (errRetry), a new
// link is needed beyond MaxLinks (errLinkLimit), only undeliverable messages are left
// (errUndeliverable), something fails, or ctx ends. Before it returns, all its
// goroutines have exited and all deletes are committed.
func (f *forwarder) pipeline(parent context.Context) error {
	ctx, fail := context.WithCancelCause(parent)
	defer fail(nil)
	sending, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancelWait) })()

	p := &pipeline{
		f: f, ctx: ctx, fail: fail, sending: sending, stop: stop, wctx: wctx,
		tokens: make(chan struct{}, f.u.cfg.InFlight),
		lanes:  map[string]*lane{},
		passed: map[string]bool{},
		timer:  time.NewTimer(time.Hour),
	}
	p.timer.Stop()
	f.holdEnd.Store(0)
	p.del = startDeleter(f.u.src, fail)
	err := p.read()
	if isStopReason(err) {
		stop(err)
	} else {
		fail(err)
	}
	p.wg.Wait()
	_ = p.del.close() // a failure to delete cancelled ctx with its error

	if parent.Err() != nil {
		return context.Cause(parent)
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return context.Cause(sending)
}

func isStopReason(err error) bool {
	return errors.Is(err, errRetry) || errors.Is(err, errLinkLimit) || errors.Is(err, errUndeliverable)
}

// read reads stored messages by route priority and hands them to the lanes; see
// forwarder. It returns a stop reason, a failure, or the cause of sending's end.
func (p *pipeline) read() error {
	f := p.f
	var cur store.Cursor // a fresh one: read the store from the start
	var corrupt uint64   // the last corrupt record dead-lettered
	notify := f.u.src.Notify()
	batch := min(f.u.cfg.InFlight, readBatch)
	for {
		if p.sending.Err() != nil {
			return context.Cause(p.sending)
		}
		now := f.u.now()
		if p.holdDue(now) {
			return errRetry
		}
		msgs, err := f.u.src.ReadNext(&cur, batch)
		if ce := (*store.CorruptError)(nil); errors.As(err, &ce) && ce.Seq != corrupt {
			// The record cannot be decoded; keep it aside. ReadNext did not move the
			// cursor, so the next call goes on with the messages after it. (The same
			// record again would mean it cannot be moved: that is a failure.)
			corrupt = ce.Seq
			if err := f.deadLetter(ce.Seq, "", "corrupt record in the store: "+ce.Detail); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			if p.pending.Load() == 0 {
				// Everything read was sent (or put aside).
				if p.needLinks.Load() {
					return errLinkLimit
				}
				if f.undeliverableCount() > 0 {
					return errUndeliverable
				}
				f.markReady()
			}
			var timer <-chan time.Time
			if !p.due.IsZero() {
				timer = f.u.after(p.due.Sub(now))
			}
			select {
			case <-notify:
			case <-f.wake:
			case <-timer:
			case <-p.sending.Done():
				return context.Cause(p.sending)
			case <-f.conn.Done():
				return fmt.Errorf("connection lost: %w", readable(f.conn.Err()))
			}
			continue
		}
		for i := range msgs {
			if err := p.dispatch(&msgs[i], msgs[i+1:]); err != nil {
				return err
			}
		}
	}
}

// holdDue notes the holds made since it last looked and reports whether one of them
// is due at now: then the pipeline ends, so that the next one sends the address's
// messages again.
func (p *pipeline) holdDue(now time.Time) bool {
	earliest := func(t time.Time) {
		if !t.IsZero() && (p.due.IsZero() || t.Before(p.due)) {
			p.due = t
		}
	}
	earliest(p.f.u.held.nextDue(now)) // holds made before this pipeline
	if ns := p.f.holdEnd.Load(); ns != 0 {
		earliest(time.Unix(0, ns))
	}
	return !p.due.IsZero() && !now.Before(p.due)
}

// dispatch hands m to its target's lane, or leaves it stored: when its address is
// held, it is undeliverable here, or its address was passed by in this pipeline.
// rest is what the reader has read after m.
//
// When the lane's queue is full, dispatch waits for room, like any backpressure,
// unless a hold made meanwhile is due (errRetry), or the lane is slow for reasons
// of its own address, so that it must not hold up the others:
//   - it gave up on the pipeline (halted);
//   - its sender waited creditWait in all for the cloud (an attach, link credit,
//     §2.6.7) since it last caught up with the reader, be it in one long wait or
//     in many short ones of a link that gets credit slowly;
//   - it holds more than half the InFlight tokens, its outcomes are slow to
//     come, the reader waited creditWait in all for room in it since it last
//     caught up, and messages of other addresses wait in rest.
//
// Waits for the rate limit or for tokens held by other lanes are backpressure
// shared by all addresses and do not count.
// Then the address is passed by: the rest of its messages stay stored, in order,
// and the lane ends the pipeline once it has sent its queue, so that the next
// pipeline sends them (see lane.sendAll).
func (p *pipeline) dispatch(m *store.Message, rest []store.Message) error {
	f := p.f
	if m.Address == "" {
		return f.deadLetter(m.Seq, "", errNoAddress.Error())
	}
	target := f.u.cloudAddress(m)
	if p.passed[target] || f.isUndeliverable(m.Seq) {
		return nil
	}
	if f.u.held.held(target, f.u.now()) {
		// Keep the address's order: nothing of it is sent before its held message.
		p.passed[target] = true
		return nil
	}
	l := p.lanes[target]
	if l == nil {
		if len(p.lanes) >= f.u.cfg.MaxLinks {
			// Each lane needs a link: this address waits for the next pipeline, which
			// starts after all links were closed.
			p.needLinks.Store(true)
			p.passed[target] = true
			return nil
		}
		l = p.startLane(target)
	}
	if l.halted.Load() {
		p.passed[target] = true
		return nil
	}
	p.pending.Add(1)
	select {
	case l.queue <- m:
		return nil
	default:
	}

	wait := min(creditWait, f.u.cfg.StallTimeout/2)
	if e := l.emptied.Load(); e != l.emptiedSeen {
		l.emptiedSeen, l.fullWaited = e, 0
	}
	start := f.u.now()
	defer func() { l.fullWaited += f.u.now().Sub(start) }()
	others := p.othersIn(rest, target)
	// slowLeft returns how much longer the lane must be slow to be passed by, and why.
	slowLeft := func(now time.Time) (time.Duration, string) {
		left, reason := wait-l.cloudWaited(now), "the cloud is slow to give link credit"
		if others && l.inFlight.Load() > int64(cap(p.tokens)/2) {
			if d := wait - l.fullWaited - now.Sub(start); d < left {
				left, reason = d, "the cloud is slow to settle"
			}
		}
		return left, reason
	}
	reason := "the lane stopped sending"
	for {
		now := f.u.now()
		if p.holdDue(now) {
			p.idle(1)
			return errRetry
		}
		left, why := slowLeft(now)
		if left <= 0 {
			reason = why
			break
		}
		if !p.due.IsZero() {
			left = min(left, p.due.Sub(now))
		}
		p.timer.Reset(max(left, time.Millisecond))
		select {
		case l.queue <- m:
			p.timer.Stop()
			return nil
		case <-l.stuck:
			p.timer.Stop()
		case <-f.wake: // perhaps a hold
			p.timer.Stop()
			continue
		case <-p.timer.C:
			continue
		case <-p.sending.Done():
			p.timer.Stop()
			p.idle(1)
			return context.Cause(p.sending)
		}
		break
	}
	f.u.log.Debug("passing address by", "target", target, "reason", reason)
	p.idle(1)
	p.passed[target] = true
	close(l.passedBy)
	return nil
}

// othersIn reports whether msgs hold a message for a cloud address other than
// target that is not passed by.
func (p *pipeline) othersIn(msgs []store.Message, target string) bool {
	for i := range msgs {
		if a := p.f.u.cloudAddress(&msgs[i]); a != target && !p.passed[a] {
			return true
		}
	}
	return false
}

// idle counts n messages that left the lanes' hands; it wakes the reader when none
// are left.
func (p *pipeline) idle(n int) {
	if p.pending.Add(int64(-n)) == 0 {
		p.f.signal()
	}
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
