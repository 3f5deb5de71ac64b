package store

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// opKind is what a request asks the committer to do.
type opKind uint8

const (
	opAppend opKind = iota + 1
	opDelete
	opDeadLetter
	opDeleteDead
	opCheck
	opRequeue   // move dead letters (seqs) back to the queue under new seqs
	opPurge     // delete up to purgeChunk queued messages (or dead letters: reason "dead")
	opHousekeep // no write of its own: purge expired messages
	opCompact   // rewrite the file (not a write transaction)
	opRewrite   // replace the payload of a queued message (one seq)

	// Device-bound queues (command.go).
	opCmdAppend
	opCmdDelete
	opCmdDead
	opCmdRewrite
	opCmdPurge
)

// String returns the operation name used in error messages.
func (k opKind) String() string {
	switch k {
	case opAppend:
		return "append"
	case opDelete:
		return "delete"
	case opDeadLetter:
		return "dead letter"
	case opDeleteDead:
		return "delete dead letters"
	case opCheck:
		return "check"
	case opRequeue:
		return "requeue"
	case opPurge:
		return "purge"
	case opHousekeep:
		return "housekeeping"
	case opCompact:
		return "compact"
	case opRewrite:
		return "rewrite"
	case opCmdAppend, opCmdDelete, opCmdDead, opCmdRewrite, opCmdPurge:
		return "command " + cmdOpNames[k-opCmdAppend]
	}
	return fmt.Sprintf("op %d", uint8(k))
}

// request is one unit of work for the committer. The fields above done are
// set by the sender and read-only afterwards; the committer owns the rest.
type request struct {
	kind     opKind
	route    *route   // opAppend
	address  string   // opAppend
	source   string   // opAppend
	received int64    // opAppend, Unix nanoseconds
	expires  int64    // opAppend, Unix nanoseconds, 0: never
	payload  []byte   // opAppend, opRewrite
	seqs     []uint64 // opDelete, opDeadLetter and opRewrite (one seq), opDeleteDead
	reason   string   // opDeadLetter
	device   string   // opCmd*
	key      string   // opCmdAppend: supersede key
	run      uint64   // opCmdAppend: Command.Run

	// done is called exactly once, on the committer goroutine, with the
	// assigned seq (opAppend) and the request's error; for an AppendAsync,
	// appended is called instead (see finish).
	done     func(seq uint64, err error)
	msg      *Message    // AppendAsync: gets the assigned seq
	appended func(error) // AppendAsync's callback

	queued time.Time // when it was handed to the committer (opAppend)

	seq uint64 // assigned seq (opAppend); messages affected (opRequeue, opPurge)
	err error  // the request's own error, if the transaction committed
}

// finish completes the request: AppendAsync's callback, after setting the
// message's seq if it was stored, or done.
func (r *request) finish(seq uint64, err error) {
	if r.appended != nil {
		if err == nil {
			r.msg.Seq = seq
		}
		r.appended(err)
		return
	}
	r.done(seq, err)
}

// weight is how much of Options.MaxBatch the request uses.
func (r *request) weight() int {
	if len(r.seqs) > 1 {
		return len(r.seqs)
	}
	return 1
}

// run is the committer goroutine: it owns all writes until reqs is closed and
// drained.
func (s *Store) run() {
	defer close(s.exited)
	defer func() { s.flushDrops(time.Now(), true) }() // no drop goes unannounced at shutdown
	batch := make([]*request, 0, 64)
	var timer *time.Timer
	tick := time.NewTicker(housekeepEvery)
	defer tick.Stop()
	for {
		var r *request
		var ok bool
		select {
		case r, ok = <-s.reqs:
		case <-tick.C:
			s.housekeep()
			continue
		}
		if !ok {
			return
		}
		batch = append(batch[:0], r)
		n := r.weight()
		open := true
		if s.opts.MaxDelay > 0 && n < s.opts.MaxBatch {
			if timer == nil {
				timer = time.NewTimer(s.opts.MaxDelay)
			} else {
				timer.Reset(s.opts.MaxDelay)
			}
		wait:
			for n < s.opts.MaxBatch {
				select {
				case r, ok := <-s.reqs:
					if !ok {
						open = false
						break wait
					}
					batch = append(batch, r)
					n += r.weight()
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}
	drain:
		for open && n < s.opts.MaxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, r)
				n += r.weight()
			default:
				break drain
			}
		}
		s.commit(batch)
		clear(batch) // drop references to payloads and callbacks
		if !open {
			return
		}
	}
}

// commit applies the write requests of batch in one transaction, then runs
// the check requests, then completes every request.
func (s *Store) commit(batch []*request) {
	writes := 0
	for _, r := range batch {
		if r.kind != opCheck && r.kind != opCompact {
			writes++
		}
	}
	s.refreshFree(false)
	var (
		err      error
		appended int
		t        = &s.txn
	)
	if writes > 0 {
		appended, err = s.write(batch, t)
		s.arena = s.arena[:0]
		if cap(s.arena) > 4<<20 {
			s.arena = nil // do not keep a burst's buffer forever
		}
		if err != nil {
			s.since.commitErrors++
			if errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) {
				err = fmt.Errorf("commit: %w: %w", ErrFull, err)
				s.diskFull = true
			} else {
				err = fmt.Errorf("commit: %w", err)
			}
			s.cmdAborted()
			// What the failed transaction did to the index is undone.
			_ = s.loadNextExpiry()
			if !s.failing {
				s.log.Warn("commits failing", "err", err)
				s.failing = true
			}
		} else {
			s.persisted = t.c
			s.cmdCommitted()
			for i, r := range s.rt.all {
				r.count = t.rc[i]
				r.dropped += t.dropped[i]
			}
			s.diskFull = false
			s.since.commits++
			s.since.appended += uint64(appended)
			s.since.add(s.pend.tally)
			s.totals.dropped += s.pend.dropped
			s.totals.expired += s.pend.expired
			if s.pend.dropped > 0 {
				s.dropLog.add(s.pend, time.Now())
			}
			if s.failing {
				s.log.Info("commits recovered")
				s.failing = false
			}
			now := time.Now()
			for _, r := range batch {
				if r.kind == opAppend && r.err == nil {
					s.ackLat.observe(now.Sub(r.queued), now)
				}
			}
		}
		s.updateFull()
		s.publish()
		if err == nil && appended > 0 {
			s.appended.fire()
		}
	}
	for _, r := range batch {
		switch {
		case r.kind == opCheck:
			r.finish(0, s.check())
		case r.kind == opCompact:
			_, err := s.compactFile()
			s.publish()
			r.finish(0, err)
		case err != nil:
			r.finish(0, fmt.Errorf("store: %s: %w", r.kind, err))
		case r.err != nil:
			r.finish(0, r.err)
		default:
			r.finish(r.seq, nil)
		}
	}
}

// write runs the write requests of batch in one read-write transaction and
// commits it, updating t to the counters the file holds if it succeeds. It
// returns the number of messages appended.
func (s *Store) write(batch []*request, t *txn) (int, error) {
	s.pend = pending{}
	tx, err := s.db.Begin(true)
	if err != nil {
		return 0, err
	}
	t.begin(s, tx)
	defer t.end()
	appended, err := s.apply(batch, t)
	if err != nil {
		_ = tx.Rollback()
		return 0, err
	}
	return appended, tx.Commit()
}

// apply performs the write requests of batch in t. Errors that concern one
// request (a missing seq) are stored in the request; errors returned abort
// the whole transaction.
func (s *Store) apply(batch []*request, t *txn) (int, error) {
	wall := time.Now().UnixNano()
	now := s.opts.Clock.Now().UnixNano()
	appended := 0
	for _, r := range batch {
		r.err = nil
		var n int
		var err error
		switch r.kind {
		case opAppend:
			n, err = s.applyAppend(t, r)
		case opDelete:
			err = s.applyDelete(t, r)
		case opDeadLetter:
			err = s.applyDeadLetter(t, r, wall)
		case opRewrite:
			err = s.applyRewrite(t, r)
		case opDeleteDead:
			err = s.applyDeleteDead(t, r)
		case opRequeue:
			n, err = s.requeue(t, r.seqs)
			r.seq = uint64(n)
		case opPurge:
			var purged int
			purged, err = s.purge(t, r.reason == "dead")
			r.seq = uint64(purged)
		case opCmdAppend, opCmdDelete, opCmdDead, opCmdRewrite, opCmdPurge:
			err = s.applyCommand(t, r)
		}
		if err != nil {
			return 0, err
		}
		appended += n
	}
	if err := s.purgeExpired(t, now); err != nil {
		return 0, err
	}
	if err := s.cmdEnd(t, now); err != nil {
		return 0, err
	}
	if s.lastSeq > t.q.Sequence() {
		if err := t.q.SetSequence(s.lastSeq); err != nil {
			return 0, fmt.Errorf("set sequence: %w", err)
		}
	}
	if err := s.putCounts(t); err != nil {
		return 0, err
	}
	if s.pend.dropped > 0 || s.pend.expired > 0 {
		tot := s.totals
		tot.dropped += s.pend.dropped
		tot.expired += s.pend.expired
		if err := t.meta.Put(keyTotals, tot.encodeTotals()); err != nil {
			return 0, fmt.Errorf("put totals: %w", err)
		}
	}
	return appended, nil
}

// check implements Check; it runs on the committer goroutine, so no write
// transaction runs concurrently with bbolt's check of the freelist.
func (s *Store) check() error {
	err := s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		q := tx.Bucket(bucketQueue)
		seqMax := q.Sequence()
		buckets := map[string]*bolt.Bucket{"dead letters": tx.Bucket(bucketDead)}
		for _, r := range s.rt.all {
			buckets["route "+r.Name] = q.Bucket(r.key)
		}
		for name, b := range buckets {
			if k, _ := b.Cursor().Last(); k != nil {
				if seq, err := keySeq(k); err == nil && seq > seqMax {
					errs = append(errs, fmt.Errorf("%s: seq %d above sequence counter %d", name, seq, seqMax))
				}
			}
		}
		errs = append(errs, s.checkCommands(tx, seqMax)...) // command_check.go
		meta := tx.Bucket(bucketMeta)
		got, perRoute, err := count(tx)
		if err != nil {
			errs = append(errs, err)
		} else if v := meta.Get(keyStats); v == nil {
			errs = append(errs, errors.New("stats record missing"))
		} else if c, err := decodeCounters(v); err != nil {
			errs = append(errs, err)
		} else if c != got {
			errs = append(errs, fmt.Errorf("stats record %+v, records hold %+v", c, got))
		}
		for name, want := range perRoute {
			if rc, ok := decodeRouteCounters(meta.Get(routeStatsKey(name))); !ok {
				errs = append(errs, fmt.Errorf("route %s: stats record missing or unreadable", name))
			} else if rc != want {
				errs = append(errs, fmt.Errorf("route %s: stats record %+v, records hold %+v", name, rc, want))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	return nil
}
