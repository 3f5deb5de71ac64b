package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Read returns up to max queued messages with Seq > after, in Seq order across
// all routes. The messages are copies, owned by the caller. Read runs in a bbolt
// read transaction concurrently with commits; its cost is proportional to the
// bytes returned. A forwarder that should respect route priorities uses
// ReadNext instead.
func (s *Store) Read(after uint64, max int) ([]Message, error) {
	if max <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	var msgs []Message
	err := s.view(func(tx *bolt.Tx) (err error) {
		msgs, err = s.readMerged(tx.Bucket(bucketQueue), s.rt.all, func(*route) uint64 { return after }, func(*route, uint64) {}, max, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	return msgs, nil
}

// DeadLetters returns all dead letters in Seq order, as copies. Its cost is
// proportional to the size of the dead-letter area.
func (s *Store) DeadLetters() ([]DeadLetter, error) {
	var dls []DeadLetter
	err := s.view(func(tx *bolt.Tx) error {
		var str interner
		return tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			seq, err := keySeq(k)
			if err != nil {
				return err
			}
			h, err := decodeDeadRecord(seq, v)
			if err != nil {
				return err
			}
			dls = append(dls, DeadLetter{
				Message: h.msg.message(seq, &str),
				Reason:  string(h.reason),
				At:      time.Unix(0, h.at),
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: dead letters: %w", err)
	}
	return dls, nil
}

// view runs fn in a read transaction, mapping a closed database to ErrClosed.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Cursor is a reading position in every route, for ReadNext. The zero value
// reads from the start. A Cursor is not safe for concurrent use.
type Cursor struct {
	after map[string]uint64 // route name → last seq read
}

// Oldest returns, per route name, when the route's oldest queued message was
// received; routes with no messages are missing. It reads one record per route.
func (s *Store) Oldest() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.view(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		for _, r := range s.rt.all {
			b := q.Bucket(r.key)
			if b == nil {
				continue
			}
			k, v := b.Cursor().First()
			if k == nil {
				continue
			}
			seq, err := keySeq(k)
			if err != nil {
				return err
			}
			h, err := decodeMessageRecord(seq, v)
			if err != nil {
				return err
			}
			out[r.Name] = time.Unix(0, h.received)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: oldest: %w", err)
	}
	return out, nil
}

// ReadNext returns up to max queued messages after the cursor and advances it
// past them (and past expired messages it skipped); fewer once their payloads
// reach ReadBytes, at least one. Routes are served by
// strict priority: if a route of the highest priority has messages after the
// cursor, only messages of that priority are returned (those of several such
// routes merged in seq order); lower priorities are read when the higher ones
// have nothing new. Within a route, order is seq order: first in, first out.
// The messages are copies, owned by the caller; Message.Route is set.
//
// A reader that drains with ReadNext and deletes what it forwarded sees
// high-priority messages appended while it works on its next call.
func (s *Store) ReadNext(c *Cursor, max int) ([]Message, error) {
	return s.ReadNextFunc(c, max, nil)
}

// mergeRoutes calls fn with the records of the routes that follow each route's
// position (after; ^0 skips the route), merged in seq order, until fn returns
// false or an error, or the records run out. Keys are 8-byte big-endian seqs,
// so byte order is seq order.
func mergeRoutes(q *bolt.Bucket, routes []*route, after func(*route) uint64, fn func(r *route, seq uint64, v []byte) (bool, error)) error {
	type head struct {
		r    *route
		c    *bolt.Cursor
		k, v []byte
	}
	heads := make([]head, 0, len(routes))
	for _, r := range routes {
		b := q.Bucket(r.key)
		if from := after(r); b != nil && from != ^uint64(0) {
			c := b.Cursor()
			k, v := c.Seek(seqKey(from + 1))
			heads = append(heads, head{r, c, k, v})
		}
	}
	for {
		best := -1
		for i, h := range heads {
			if h.k != nil && (best < 0 || bytes.Compare(h.k, heads[best].k) < 0) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		h := &heads[best]
		seq, err := keySeq(h.k)
		if err != nil {
			return err
		}
		if more, err := fn(h.r, seq, h.v); err != nil || !more {
			return err
		}
		h.k, h.v = h.c.Next()
	}
}

// OldestReceived returns when the oldest queued message of any route was
// received, or the zero Time when the queue is empty. It reads one record per
// route in a bbolt read transaction, whatever the size of the backlog, so it is
// cheap enough for every metrics scrape. Dead letters are not counted.
func (s *Store) OldestReceived() (time.Time, error) {
	per, err := s.Oldest()
	var oldest time.Time
	for _, t := range per {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, err
}
