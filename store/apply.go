package store

import "fmt"

// The operations of the write path, one per request kind, applied by the committer
// to the transaction being built (see apply). Each returns an error only when the
// transaction cannot go on (it is then rolled back and every request in it fails);
// what is wrong with one request alone goes into r.err and the others proceed.

// applyAppend stores an appended message, after making room for it or refusing it
// under the budgets; it returns 1 if the message was stored.
func (s *Store) applyAppend(t *txn, r *request) (int, error) {
	if why, err := s.makeRoom(t, r.route, uint64(len(r.payload))); err != nil {
		return 0, err
	} else if why != "" {
		s.pend.rejected++
		if s.tooLarge(r.route, uint64(len(r.payload))) != "" {
			// The message, not the store, is the problem: others still fit.
			r.err = fmt.Errorf("store: append: %w (%d payload bytes exceed the whole %s budget)", ErrFull, len(r.payload), why)
			return 0, nil
		}
		s.refuse(t, r.route, why)
		r.err = fmt.Errorf("store: append: %w (%s)", ErrFull, why)
		return 0, nil
	}
	// lastSeq advances even if the commit fails, so a seq is never handed out twice
	// by one process.
	s.lastSeq++
	r.seq = s.lastSeq
	if err := s.putMessage(t, r.route, r.seq, r.received, r.expires, r.address, r.source, r.payload); err != nil {
		return 0, err
	}
	return 1, nil
}

// applyDelete removes queued messages; seqs not queued are ignored.
func (s *Store) applyDelete(t *txn, r *request) error {
	for _, seq := range r.seqs {
		if _, err := s.removeMessage(t, seq); err != nil {
			return err
		}
	}
	return nil
}

// applyDeadLetter moves a queued message to the dead-letter area with the reason.
func (s *Store) applyDeadLetter(t *txn, r *request, wall int64) error {
	seq := r.seqs[0]
	rt, v := s.find(t, seq)
	if v == nil {
		r.err = fmt.Errorf("store: %s %d: %w", r.kind, seq, ErrNotFound)
		return nil
	}
	k := s.key(seq)
	start := len(s.arena)
	s.arena = appendDeadRecord(s.arena, wall, r.reason, v) // copies v before the delete
	if err := t.dead.Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
		return fmt.Errorf("put dead letter %d: %w", seq, err)
	}
	n, err := s.removeFrom(t, rt, seq)
	if err != nil {
		return err
	}
	t.c.deadLetters++
	t.c.deadBytes += n
	return nil
}

// applyRewrite replaces the payload of a queued message, keeping the rest of its
// record.
func (s *Store) applyRewrite(t *txn, r *request) error {
	seq := r.seqs[0]
	rt, v := s.find(t, seq)
	if v == nil {
		r.err = fmt.Errorf("store: %s %d: %w", r.kind, seq, ErrNotFound)
		return nil
	}
	h, err := decodeMessageRecord(seq, v)
	if err != nil {
		r.err = fmt.Errorf("store: %s: %w", r.kind, err)
		return nil
	}
	k := s.key(seq)
	start := len(s.arena)
	// Copies the header fields out of v before the put replaces it.
	s.arena = appendMessageRecordV2(s.arena, h.received, h.expires, string(h.address), string(h.source), r.payload)
	if err := t.buckets[rt.idx].Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
		return fmt.Errorf("rewrite %d: %w", seq, err)
	}
	old, n := uint64(len(h.payload)), uint64(len(r.payload))
	sub(&t.c.bytes, old)
	t.c.bytes += n
	sub(&t.rc[rt.idx].bytes, old)
	t.rc[rt.idx].bytes += n
	t.dirty[rt.idx] = true
	return nil
}

// applyDeleteDead removes dead letters; seqs that are not dead letters are ignored.
func (s *Store) applyDeleteDead(t *txn, r *request) error {
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
			return fmt.Errorf("delete dead letter %d: %w", seq, err)
		}
		sub(&t.c.deadLetters, 1)
		sub(&t.c.deadBytes, n)
	}
	return nil
}
