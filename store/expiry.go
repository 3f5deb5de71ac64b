package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// purgeChunk bounds the work one commit does for expiry and purges, so that
// appends queued behind it wait for one bounded transaction.
const purgeChunk = 4096

// expiresAt returns when a message expires, in Unix nanoseconds, 0 for
// never: m.Expires as its producer worked it out, or received plus the route's
// DefaultTTL if that is zero.
func (s *Store) expiresAt(m *Message, r *route, received time.Time) int64 {
	at := m.Expires
	if at.IsZero() && r.DefaultTTL > 0 {
		at = received.Add(r.DefaultTTL)
	}
	if at.IsZero() {
		return 0
	}
	if n := unixNanos(at); n > 0 {
		return n
	}
	return 1 // before 1970: expired, but not "never"
}

// expiryKey returns the key of the expiry index entry of seq: the expiry
// time and the seq, 8 bytes big-endian each, allocated in the arena.
func (s *Store) expiryKey(expires int64, seq uint64) []byte {
	start := len(s.arena)
	s.arena = binary.BigEndian.AppendUint64(s.arena, uint64(expires))
	s.arena = appendSeqKey(s.arena, seq)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// loadNextExpiry sets s.nextExp from the first entry of the expiry index.
func (s *Store) loadNextExpiry() error {
	return s.db.View(func(tx *bolt.Tx) error {
		s.nextExp = 0
		if k, _ := tx.Bucket(bucketExpiry).Cursor().First(); len(k) == 16 {
			s.nextExp = int64(binary.BigEndian.Uint64(k))
		}
		return nil
	})
}

// purgeExpired deletes up to purgeChunk messages whose expiry time is at or
// before now, if any is due; an int comparison when none is.
func (s *Store) purgeExpired(t *txn, now int64) error {
	if s.nextExp == 0 || s.nextExp > now {
		return nil
	}
	cur := t.exp.Cursor()
	n := 0
	k, _ := cur.First()
	for ; k != nil && n < purgeChunk; k, _ = cur.First() {
		if len(k) != 16 {
			if err := cur.Delete(); err != nil {
				return fmt.Errorf("delete expiry entry: %w", err)
			}
			continue
		}
		at := int64(binary.BigEndian.Uint64(k))
		if at > now {
			break
		}
		seq := binary.BigEndian.Uint64(k[8:])
		// Delete the index entry first: a record missing or not matching it
		// (a stale entry) must not stop the purge.
		if err := cur.Delete(); err != nil {
			return fmt.Errorf("delete expiry entry %d: %w", seq, err)
		}
		if r, v := s.find(t, seq); v != nil {
			if h, err := decodeMessageRecord(seq, v); err == nil && h.expired(now) {
				if _, err := s.removeFrom(t, r, seq); err != nil {
					return err
				}
				s.pend.expired++
			}
		}
		n++
	}
	s.nextExp = 0
	if len(k) == 16 {
		s.nextExp = int64(binary.BigEndian.Uint64(k))
	}
	return nil
}
