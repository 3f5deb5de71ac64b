package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// txn is what the committer's transaction works on: the buckets and the
// counters as they will be if it commits.
type txn struct {
	q, dead, exp, meta *bolt.Bucket
	c                  counters
	buckets            []*bolt.Bucket // by route index
	rc                 []counters     // by route index
	dirty              []bool         // route counters changed
	dropped            []uint64       // messages dropped to make room, by route index
	// cursors are the route buckets' cursors, by route index, made on first use and
	// reused for every lookup in the transaction: a bbolt Get or Delete makes a new
	// cursor (and its stack) each time. Each use starts with a Seek, which
	// repositions the cursor after any change to the bucket.
	cursors []*bolt.Cursor
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
	t.cursors = append(t.cursors[:0], make([]*bolt.Cursor, n)...)
}

// seek returns the record of seq's key k in route i's bucket, or nil, leaving the
// route's cursor on it.
func (t *txn) seek(i int, k []byte) []byte {
	c := t.cursors[i]
	if c == nil {
		c = t.buckets[i].Cursor()
		t.cursors[i] = c
	}
	if ck, v := c.Seek(k); bytes.Equal(ck, k) {
		return v
	}
	return nil
}

// end drops the references to the finished transaction.
func (t *txn) end() {
	clear(t.buckets)
	clear(t.cursors)
	t.q, t.dead, t.exp, t.meta = nil, nil, nil, nil
}

// find returns the route and record of the queued message seq, or nil.
func (s *Store) find(t *txn, seq uint64) (*route, []byte) {
	k := s.key(seq)
	for i, r := range s.rt.all {
		if t.rc[i].messages == 0 {
			continue
		}
		if v := t.seek(i, k); v != nil {
			return r, v
		}
	}
	return nil, nil
}

// key returns seqKey(seq) allocated in the arena, which lives until the
// transaction ends.
func (s *Store) key(seq uint64) []byte {
	start := len(s.arena)
	s.arena = appendSeqKey(s.arena, seq)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// putMessage stores a message record under seq on route r and indexes its
// expiry.
func (s *Store) putMessage(t *txn, r *route, seq uint64, received, expires int64, address, source string, payload []byte) error {
	k := s.key(seq)
	start := len(s.arena)
	s.arena = appendMessageRecordV2(s.arena, received, expires, address, source, payload)
	if err := t.buckets[r.idx].Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
		return fmt.Errorf("put %d: %w", seq, err)
	}
	if expires != 0 {
		if err := t.exp.Put(s.expiryKey(expires, seq), nil); err != nil {
			return fmt.Errorf("put expiry %d: %w", seq, err)
		}
		if s.nextExp == 0 || expires < s.nextExp {
			s.nextExp = expires
		}
	}
	n := uint64(len(payload))
	t.c.messages++
	t.c.bytes += n
	t.rc[r.idx].messages++
	t.rc[r.idx].bytes += n
	t.dirty[r.idx] = true
	return nil
}

// removeMessage deletes the queued message seq, on whichever route it is, and
// its expiry index entry, if it is queued, and returns its payload size.
func (s *Store) removeMessage(t *txn, seq uint64) (uint64, error) {
	r, v := s.find(t, seq)
	if r == nil {
		return 0, nil
	}
	return s.removeAt(t, r, seq, v)
}

// removeFrom deletes the queued message seq from route r and its expiry
// entry, returning its payload size (0 if it was not there).
func (s *Store) removeFrom(t *txn, r *route, seq uint64) (uint64, error) {
	v := t.seek(r.idx, s.key(seq))
	if v == nil {
		return 0, nil
	}
	return s.removeAt(t, r, seq, v)
}

// removeAt deletes the record v of seq, on which route r's cursor stands (see
// txn.seek), and its expiry entry, returning its payload size.
func (s *Store) removeAt(t *txn, r *route, seq uint64, v []byte) (uint64, error) {
	n := uint64(len(v))
	h, err := decodeMessageRecord(seq, v)
	if err == nil {
		n = uint64(len(h.payload))
		if h.expires != 0 {
			if err := t.exp.Delete(s.expiryKey(h.expires, seq)); err != nil {
				return 0, fmt.Errorf("delete expiry %d: %w", seq, err)
			}
		}
	}
	if err := t.cursors[r.idx].Delete(); err != nil {
		return 0, fmt.Errorf("delete %d: %w", seq, err)
	}
	sub(&t.c.messages, 1)
	sub(&t.c.bytes, n)
	sub(&t.rc[r.idx].messages, 1)
	sub(&t.rc[r.idx].bytes, n)
	t.dirty[r.idx] = true
	return n, nil
}
