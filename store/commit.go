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

	// done is called exactly once, on the committer goroutine, with the
	// assigned seq (opAppend) and the request's error.
	done func(seq uint64, err error)

	queued time.Time // when it was handed to the committer (opAppend)

	seq uint64 // assigned seq (opAppend); messages affected (opRequeue, opPurge)
	err error  // the request's own error, if the transaction committed
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
			// What the failed transaction did to the index is undone.
			_ = s.loadNextExpiry()
			if !s.failing {
				s.log.Warn("commits failing", "err", err)
				s.failing = true
			}
		} else {
			s.persisted = t.c
			for i, r := range s.rt.all {
				r.count = t.rc[i]
				r.dropped += t.dropped[i]
			}
			s.diskFull = false
			s.since.commits++
			s.since.appended += uint64(appended)
			s.since.rejected += s.pend.rejected
			s.since.expired += s.pend.expired
			s.totals.dropped += s.pend.dropped
			s.totals.expired += s.pend.expired
			if s.pend.dropped > 0 {
				s.since.dropped += s.pend.dropped
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
			r.done(0, s.check())
		case r.kind == opCompact:
			_, err := s.compactFile()
			s.publish()
			r.done(0, err)
		case err != nil:
			r.done(0, fmt.Errorf("store: %s: %w", r.kind, err))
		case r.err != nil:
			r.done(0, r.err)
		default:
			r.done(r.seq, nil)
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

// txn is what the committer's transaction works on: the buckets and the
// counters as they will be if it commits.
type txn struct {
	q, dead, exp, meta *bolt.Bucket
	c                  counters
	buckets            []*bolt.Bucket // by route index
	rc                 []routeCount   // by route index
	dirty              []bool         // route counters changed
	dropped            []uint64       // messages dropped to make room, by route index
}

// begin prepares t for tx, starting from the persisted counters.
func (t *txn) begin(s *Store, tx *bolt.Tx) {
	t.q, t.dead, t.exp, t.meta = tx.Bucket(bucketQueue), tx.Bucket(bucketDead), tx.Bucket(bucketExpiry), tx.Bucket(bucketMeta)
	// Keys only ever grow, so fill pages completely instead of splitting
	// them in half.
	t.dead.FillPercent = 1.0
	t.c = s.persisted
	n := len(s.rt.all)
	t.buckets, t.rc, t.dirty, t.dropped = t.buckets[:0], t.rc[:0], t.dirty[:0], t.dropped[:0]
	for _, r := range s.rt.all {
		b := t.q.Bucket(r.key) // initialize created every route's bucket
		b.FillPercent = 1.0
		t.buckets = append(t.buckets, b)
		t.rc = append(t.rc, r.count)
	}
	t.dirty = append(t.dirty, make([]bool, n)...)
	t.dropped = append(t.dropped, make([]uint64, n)...)
}

// end drops the references to the finished transaction.
func (t *txn) end() {
	clear(t.buckets)
	t.q, t.dead, t.exp, t.meta = nil, nil, nil, nil
}

// find returns the route and record of the queued message seq, or nil.
func (s *Store) find(t *txn, seq uint64) (*route, []byte) {
	k := s.key(seq)
	for i, r := range s.rt.all {
		if t.rc[i].messages == 0 {
			continue
		}
		if v := t.buckets[i].Get(k); v != nil {
			return r, v
		}
	}
	return nil, nil
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
		switch r.kind {
		case opAppend:
			if why, err := s.makeRoom(t, r.route, uint64(len(r.payload))); err != nil {
				return 0, err
			} else if why != "" {
				s.pend.rejected++
				if s.tooLarge(r.route, uint64(len(r.payload))) != "" {
					// The message, not the store, is the problem: others still fit.
					r.err = fmt.Errorf("store: append: %w (%d payload bytes exceed the whole %s budget)", ErrFull, len(r.payload), why)
					continue
				}
				s.refuse(t, r.route, why)
				r.err = fmt.Errorf("store: append: %w (%s)", ErrFull, why)
				continue
			}
			// lastSeq advances even if the commit fails, so a seq is never
			// handed out twice by one process.
			s.lastSeq++
			r.seq = s.lastSeq
			if err := s.putMessage(t, r.route, r.seq, r.received, r.expires, r.address, r.source, r.payload); err != nil {
				return 0, err
			}
			appended++
		case opDelete:
			for _, seq := range r.seqs {
				if _, err := s.removeMessage(t, seq); err != nil {
					return 0, err
				}
			}
		case opDeadLetter:
			seq := r.seqs[0]
			rt, v := s.find(t, seq)
			if v == nil {
				r.err = fmt.Errorf("store: %s %d: %w", r.kind, seq, ErrNotFound)
				continue
			}
			k := s.key(seq)
			start := len(s.arena)
			s.arena = appendDeadRecord(s.arena, wall, r.reason, v) // copies v before the delete
			if err := t.dead.Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
				return 0, fmt.Errorf("put dead letter %d: %w", seq, err)
			}
			n, err := s.removeFrom(t, rt, seq)
			if err != nil {
				return 0, err
			}
			t.c.deadLetters++
			t.c.deadBytes += n
		case opRewrite:
			seq := r.seqs[0]
			rt, v := s.find(t, seq)
			if v == nil {
				r.err = fmt.Errorf("store: %s %d: %w", r.kind, seq, ErrNotFound)
				continue
			}
			h, err := decodeMessageRecord(seq, v)
			if err != nil {
				r.err = fmt.Errorf("store: %s: %w", r.kind, err)
				continue
			}
			k := s.key(seq)
			start := len(s.arena)
			// Copies the header fields out of v before the put replaces it.
			s.arena = appendMessageRecordV2(s.arena, h.received, h.expires, string(h.address), string(h.source), r.payload)
			if err := t.buckets[rt.idx].Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
				return 0, fmt.Errorf("rewrite %d: %w", seq, err)
			}
			old, n := uint64(len(h.payload)), uint64(len(r.payload))
			sub(&t.c.bytes, old)
			t.c.bytes += n
			sub(&t.rc[rt.idx].bytes, old)
			t.rc[rt.idx].bytes += n
			t.dirty[rt.idx] = true
		case opDeleteDead:
			for _, seq := range r.seqs {
				k := s.key(seq)
				v := t.dead.Get(k)
				if v == nil {
					continue
				}
				var n uint64
				if h, err := decodeDeadRecord(seq, v); err == nil {
					n = uint64(len(h.msg.payload))
				}
				if err := t.dead.Delete(k); err != nil {
					return 0, fmt.Errorf("delete dead letter %d: %w", seq, err)
				}
				sub(&t.c.deadLetters, 1)
				sub(&t.c.deadBytes, n)
			}
		case opRequeue:
			n, err := s.requeue(t, r.seqs)
			if err != nil {
				return 0, err
			}
			r.seq = uint64(n)
			appended += n
		case opPurge:
			n, err := s.purge(t, r.reason == "dead")
			if err != nil {
				return 0, err
			}
			r.seq = uint64(n)
		}
	}
	if err := s.purgeExpired(t, now); err != nil {
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
		if err := t.meta.Put(keyTotals, tot.encode()); err != nil {
			return 0, fmt.Errorf("put totals: %w", err)
		}
	}
	return appended, nil
}

// putCounts writes the totals and the counters of the routes t changed.
func (s *Store) putCounts(t *txn) error {
	if err := t.meta.Put(keyStats, t.c.encode()); err != nil {
		return fmt.Errorf("put stats: %w", err)
	}
	for i, r := range s.rt.all {
		if t.dirty[i] {
			if err := t.meta.Put(routeStatsKey(r.Name), t.rc[i].encode()); err != nil {
				return fmt.Errorf("put stats of route %s: %w", r.Name, err)
			}
		}
	}
	return nil
}

// key returns seqKey(seq) allocated in the arena, which lives until the
// transaction ends.
func (s *Store) key(seq uint64) []byte {
	start := len(s.arena)
	s.arena = appendSeqKey(s.arena, seq)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// sinceOpen holds the counters that start at zero with every Open.
type sinceOpen struct {
	commits      uint64
	commitErrors uint64
	appended     uint64
	dropped      uint64
	rejected     uint64
	expired      uint64
	compactions  uint64
}

// pending counts what the transaction being built did; it is added to
// sinceOpen if the transaction commits.
type pending struct {
	dropped, rejected, expired uint64
	dropFirst, dropLast        uint64 // seqs of the first and last dropped message
	dropWhy, dropRoute         string
}

// publish makes the committer's current counters visible to Stats.
func (s *Store) publish() {
	s.stats.Store(&Stats{
		Messages:        s.persisted.messages,
		Bytes:           s.persisted.bytes,
		DeadLetters:     s.persisted.deadLetters,
		DeadLetterBytes: s.persisted.deadBytes,
		Commits:         s.since.commits,
		CommitErrors:    s.since.commitErrors,
		Appended:        s.since.appended,
		LastSeq:         s.lastSeq,
		DroppedOldest:   s.since.dropped,
		Rejected:        s.since.rejected,
		Expired:         s.since.expired,
		DroppedTotal:    s.totals.dropped,
		AckLatency:      s.ackLat.snapshot(time.Now()),
		ExpiredTotal:    s.totals.expired,
		Compactions:     s.since.compactions,
		LastCompaction:  s.lastComp,
		FullReason:      s.fullReason(),
		FreeBytes:       s.free,
		Recovered:       s.recovered,
		Routes:          s.routeStats(),
	})
}

// routeStats returns the routes' counters for publish.
func (s *Store) routeStats() []RouteStats {
	out := make([]RouteStats, len(s.rt.all))
	for i, r := range s.rt.all {
		out[i] = RouteStats{
			Name: r.Name, Priority: r.Priority, WhenFull: r.WhenFull,
			MaxBytes: r.MaxBytes, MaxMessages: r.MaxMessages,
			Messages: r.count.messages, Bytes: r.count.bytes, Dropped: r.dropped,
			FullReason: r.fullWhy, Orphan: r.orphan,
		}
	}
	return out
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
			if rc, ok := decodeRouteCount(meta.Get(routeStatsKey(name))); !ok {
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
