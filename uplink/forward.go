package uplink

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// forwarder forwards stored messages over one connection; it is the forwarding
// user of the supervisor, made anew for each connection.
//
// One goroutine, the owner (the one that runs serve), owns the forwarding state:
// the lanes, the holds (published to Status through holds' lock), the messages
// handed to lanes and not yet settled (inflight), those given to the store worker
// and not yet committed (busy), those undeliverable here, and the reading position.
// It reads the store, hands each message to its target's lane, and acts on what
// the lanes and the store worker report on channels. No other goroutine changes
// any of it:
//
//   - per target address, a lane: a sending and a settling goroutine (see lane);
//   - one store worker, which deletes accepted messages in batches, dead-letters
//     and rewrites, in order, so that neither the owner nor a lane waits for a
//     commit (see storeWorker).
//
// The owner reads the store in passes. A pass reads it from the start with a fresh
// cursor (store priority order: routes by priority, each in Seq order) and skips
// what is in flight, busy or undeliverable here, so that it never sends a message
// twice while its outcome, or its delete, is pending. It also skips, for the rest
// of the pass, every later message of an address that is held, that it passed by
// (see passBy), or for which no link may be opened (MaxLinks): the order within an
// address is kept. A new pass starts when a hold is due, when an address it passed
// by catches up, or when the messages a halted lane dropped are back in the store's
// hands; it does not wait for the outcomes in flight on other addresses.
type forwarder struct {
	u    *Uplink
	conn *connection

	sending context.Context // ends when forwarding stops (failure, or ctx ended)
	stop    context.CancelCauseFunc
	wctx    context.Context // for awaiting outcomes: ends shutdownGrace after sending
	window  *window         // the lanes' send window: tokens for the messages being sent or awaiting their outcome
	events  chan event      // lanes → owner
	worker  *storeWorker

	// Owned by the owner goroutine.
	lanes         map[string]*lane
	running       int                     // lanes whose goroutines have not ended
	inflight      map[uint64]inflightItem // handed to a lane, not yet settled or dropped
	busy          map[uint64]struct{}     // given to the store worker, not yet committed
	committed     []uint64                // busy seqs committed since the store was last read
	pending       []*storeOp              // waiting for the store worker
	workerBusy    bool
	undeliverable map[uint64]string // seq → target: modified with undeliverable-here
	needLinks     bool              // an address waits for a link beyond MaxLinks
	holdDue       time.Time         // when the earliest hold ends; zero: none
	pass          pass
	timer         *time.Timer
	timerAt       time.Time            // when timer fires; zero: not armed
	targets       map[targetKey]string // cloudAddress's answers (see target)
}

// targetKey is what a message's cloud address depends on.
type targetKey struct{ address, source, route string }

// maxTargets bounds the forwarder's cache of cloud addresses; it is emptied when full.
const maxTargets = 4096

// target returns m's cloud address (Uplink.cloudAddress), from a cache: building
// the string for every message cost an allocation each.
func (f *forwarder) target(m *storedMessage) string {
	k := targetKey{m.Address, m.Source, m.Route}
	if t, ok := f.targets[k]; ok {
		return t
	}
	if f.targets == nil || len(f.targets) >= maxTargets {
		f.targets = make(map[targetKey]string)
	}
	t := f.u.cloudAddress(m)
	f.targets[k] = t
	return t
}

// inflightItem is a message handed to a lane.
type inflightItem struct {
	lane    *lane
	gen     int64 // the lane's generation when it was handed over
	address string
}

// pass is the owner's reading position in the store; see forwarder.
type pass struct {
	cur     cursor
	batch   []storedMessage
	next    int             // index in batch of the next message to dispatch
	atEnd   bool            // the store was read to the end
	skip    map[string]bool // stored addresses whose later messages stay stored in this pass
	corrupt uint64          // the last corrupt record dead-lettered
	restart bool            // start a new pass before reading on
	// blocked is the lane whose queue is full while batch[next] waits for it,
	// since blockedAt.
	blocked   *lane
	blockedAt time.Time
	// othersAt is othersWait's answer for lane othersFor: the index in batch of a
	// message for another address not skipped, len(batch) if none follows.
	othersFor *lane
	othersAt  int
}

// readBatch is the most messages read from the store at once.
const readBatch = 256

// laneQueue is the most messages waiting in one lane to be sent.
const laneQueue = 64

// creditWait is how long the owner waits for a lane that is busy with the cloud
// (attaching its link, or waiting for link credit) before it passes the lane's
// address by, so that other addresses go on.
const creditWait = 500 * time.Millisecond

// serve forwards stored messages over c; see user.
func (u *Uplink) serve(ctx context.Context, c *connection) error {
	f := &forwarder{
		u:             u,
		conn:          c,
		window:        newWindow(u.cfg.InFlight),
		events:        make(chan event, u.cfg.InFlight+laneQueue),
		worker:        &storeWorker{u: u, in: make(chan *storeOp), out: make(chan *storeOp)},
		lanes:         map[string]*lane{},
		inflight:      map[uint64]inflightItem{},
		busy:          map[uint64]struct{}{},
		undeliverable: map[uint64]string{},
		timer:         time.NewTimer(time.Hour),
	}
	f.timer.Stop()
	// Holds made on an earlier connection to this endpoint end in this one.
	f.holdDue = u.held.nextDue(u.clk.Now())
	return f.run(ctx)
}

// run forwards until ctx ends or forwarding fails; then it stops the lanes, waits
// for their outcomes (up to shutdownGrace) and for the store worker, and returns
// why it stopped.
func (f *forwarder) run(ctx context.Context) error {
	f.sending, f.stop = context.WithCancelCause(ctx)
	defer f.stop(nil)
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	defer context.AfterFunc(f.sending, func() { time.AfterFunc(shutdownGrace, cancelWait) })()
	f.wctx = wctx
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.worker.run()
	}()
	err := f.forward(ctx)
	err = f.shutdown(err)
	close(f.worker.in)
	<-done
	if errors.Is(err, errUndeliverable) {
		// §3.4.5: the cloud will not take these messages on this link endpoint;
		// everything else was sent. Try them on a new connection, on the next
		// endpoint if there is one.
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-f.conn.done():
			return f.conn.lostErr()
		case <-f.u.clk.After(f.u.cfg.RetryDelay):
		}
		return &switchEndpoint{index: (f.conn.index + 1) % f.conn.endpoints, reason: fmt.Sprintf("%d messages are undeliverable here", len(f.undeliverable))}
	}
	return err
}

// forward is the owner's loop: it reads and dispatches as far as it can without
// waiting, then waits for whatever comes first: room in the lane it waits for, a
// lane's report, a commit, new messages, a timer, the end.
func (f *forwarder) forward(ctx context.Context) error {
	notify := f.u.src.Notify()
	for {
		if err := f.advance(); err != nil {
			return err
		}
		if f.idle() {
			switch {
			case f.needLinks:
				f.u.log.Debug("closing all links", "links", len(f.lanes))
				for _, l := range f.lanes {
					f.retire(l)
				}
				f.needLinks, f.pass.restart = false, true
				continue
			case len(f.undeliverable) > 0:
				return errUndeliverable
			}
			f.conn.markReady()
		}
		var room chan<- item
		var it item
		if l := f.pass.blocked; l != nil {
			room, it = l.queue, item{m: &f.pass.batch[f.pass.next], gen: l.gen.Load()}
		}
		var newMessages <-chan struct{}
		if f.pass.atEnd {
			newMessages = notify
		}
		var toWorker chan<- *storeOp
		var op *storeOp
		if !f.workerBusy && len(f.pending) > 0 {
			toWorker, op = f.worker.in, f.pending[0]
		}
		select {
		case room <- it:
			l := f.pass.blocked
			l.fullWaited += f.u.clk.Now().Sub(f.pass.blockedAt)
			f.handed(l, it)
			f.pass.blocked = nil
			f.pass.next++
		case ev := <-f.events:
			if err := f.handleAll(ev); err != nil {
				return err
			}
		case toWorker <- op:
			f.pending, f.workerBusy = f.pending[1:], true
		case op := <-f.worker.out:
			f.workerBusy = false
			if err := f.done(op); err != nil {
				return err
			}
		case <-newMessages:
			f.pass.atEnd = false
		case <-f.timer.C:
			f.timerAt = time.Time{}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-f.conn.done():
			return f.conn.lostErr()
		}
	}
}

// handleAll handles ev and the events that wait behind it, without going round
// the loop for each.
func (f *forwarder) handleAll(ev event) error {
	for range cap(f.events) {
		if err := f.handle(ev); err != nil {
			return err
		}
		select {
		case ev = <-f.events:
		default:
			return nil
		}
	}
	return nil
}

// idle reports whether everything stored was read and nothing is in flight.
func (f *forwarder) idle() bool {
	return f.pass.atEnd && f.pass.blocked == nil && f.pass.next >= len(f.pass.batch) &&
		len(f.inflight) == 0 && len(f.pending) == 0 && !f.workerBusy
}

// advance starts a new pass if one is due, then reads and dispatches until the
// store is read to the end or a message waits for room in its lane.
func (f *forwarder) advance() error {
	now := f.u.clk.Now()
	if !f.holdDue.IsZero() && !now.Before(f.holdDue) {
		// A held address is due: the next pass sends its messages again.
		f.pass.restart = true
		f.holdDue = f.u.held.nextDue(now)
	}
	if f.pass.restart {
		if l := f.pass.blocked; l != nil {
			l.fullWaited += now.Sub(f.pass.blockedAt)
		}
		f.pass = pass{corrupt: f.pass.corrupt}
		for _, address := range f.u.held.storedHeldAt(now) {
			f.skipAddress(address)
		}
	}
	for {
		if l := f.pass.blocked; l != nil {
			left, why := f.slowLeft(l, now)
			if left > 0 {
				if !f.holdDue.IsZero() {
					left = min(left, f.holdDue.Sub(now))
				}
				f.wakeAt(now.Add(max(left, time.Millisecond)))
				return nil
			}
			f.passBy(l, why, now)
		}
		if f.pass.next >= len(f.pass.batch) {
			if f.pass.atEnd {
				if !f.holdDue.IsZero() {
					f.wakeAt(f.holdDue)
				}
				return nil
			}
			if err := f.read(); err != nil {
				return err
			}
			continue
		}
		if l := f.dispatch(&f.pass.batch[f.pass.next], now); l != nil {
			f.pass.blocked, f.pass.blockedAt = l, now
			if e := l.emptied.Load(); e != l.emptiedSeen {
				l.emptiedSeen, l.fullWaited = e, 0
			}
			continue
		}
		f.pass.next++
	}
}

// read reads the next batch of the pass; at the end of the store it sets atEnd.
func (f *forwarder) read() error {
	for _, seq := range f.committed {
		delete(f.busy, seq)
	}
	f.committed = f.committed[:0]
	batch := min(f.u.cfg.InFlight, readBatch)
	for {
		msgs, err := f.u.src.ReadNextFunc(&f.pass.cur, batch, f.passOver)
		if seq, detail, ok := corruptRecord(err); ok && seq != f.pass.corrupt {
			// The record cannot be decoded; keep it aside. ReadNext did not move the
			// cursor, so the next call goes on with the messages after it. (The same
			// record again would mean it cannot be moved: that is a failure.)
			f.pass.corrupt = seq
			if err := f.u.deadLetter(seq, "", "corrupt record in the store: "+detail); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		f.pass.batch, f.pass.next, f.pass.atEnd = msgs, 0, len(msgs) == 0
		f.pass.othersFor = nil
		return nil
	}
}

// wakeAt arms the timer to fire at t, unless it fires earlier already.
func (f *forwarder) wakeAt(t time.Time) {
	if !f.timerAt.IsZero() && !t.Before(f.timerAt) {
		return
	}
	f.timerAt = t
	f.timer.Reset(max(t.Sub(f.u.clk.Now()), time.Millisecond))
}

// handed records that it was handed to lane l.
func (f *forwarder) handed(l *lane, it item) {
	f.inflight[it.m.Seq] = inflightItem{lane: l, gen: it.gen, address: it.m.Address}
	l.handed++
}

// shutdown stops forwarding with cause: the lanes send nothing more, their
// outcomes are awaited up to shutdownGrace and acted on (accepted messages are
// deleted), and the store worker finishes. It returns cause, or the store's
// failure if cause was only a reason to stop.
func (f *forwarder) shutdown(cause error) error {
	f.stop(cause)
	if !f.timerAt.IsZero() {
		f.timer.Stop()
	}
	for _, l := range f.lanes {
		f.retire(l)
	}
	for f.running > 0 || len(f.pending) > 0 || f.workerBusy {
		var toWorker chan<- *storeOp
		var op *storeOp
		if !f.workerBusy && len(f.pending) > 0 {
			toWorker, op = f.worker.in, f.pending[0]
		}
		var err error
		select {
		case ev := <-f.events:
			err = f.handle(ev)
		case toWorker <- op:
			f.pending, f.workerBusy = f.pending[1:], true
		case op := <-f.worker.out:
			f.workerBusy = false
			err = f.done(op)
		}
		if err != nil && (isStopReason(cause) || cause == nil) {
			cause = err
		}
	}
	return cause
}

func isStopReason(err error) bool {
	return errors.Is(err, errUndeliverable)
}
