package store

import (
	"context"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MessageInfo describes a queued message or a dead letter without its
// payload, for listings.
type MessageInfo struct {
	Seq      uint64    `json:"seq"`
	Address  string    `json:"address"`
	Source   string    `json:"source"`
	Received time.Time `json:"received"`
	Expires  time.Time `json:"expires,omitzero"` // zero: never
	Size     int       `json:"size"`             // payload bytes
	Route    string    `json:"route,omitempty"`  // queued messages only
	Expired  bool      `json:"expired,omitempty"`
	// Dead letters only.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Err describes a record that cannot be decoded; the other fields
	// except Seq are then empty.
	Err string `json:"error,omitempty"`
}

func (h messageHeader) info(seq uint64, now int64) MessageInfo {
	mi := MessageInfo{
		Seq:      seq,
		Address:  string(h.address),
		Source:   string(h.source),
		Received: time.Unix(0, h.received),
		Size:     len(h.payload),
		Expired:  h.expired(now),
	}
	if h.expires != 0 {
		mi.Expires = time.Unix(0, h.expires)
	}
	return mi
}

// ListMessages describes up to limit queued messages with Seq > after, in
// Seq order, including expired ones not yet deleted (marked Expired) and
// damaged records (with Err). It costs one read transaction over the
// records listed.
func (s *Store) ListMessages(after uint64, limit int) ([]MessageInfo, error) {
	return s.list(bucketQueue, after, limit)
}

// ListDeadLetters is ListMessages for the dead-letter area.
func (s *Store) ListDeadLetters(after uint64, limit int) ([]MessageInfo, error) {
	return s.list(bucketDead, after, limit)
}

func (s *Store) list(bucket []byte, after uint64, limit int) ([]MessageInfo, error) {
	if limit <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	var out []MessageInfo
	now := s.opts.Clock.Now().UnixNano()
	err := s.view(func(tx *bolt.Tx) error {
		if string(bucket) == string(bucketDead) {
			c := tx.Bucket(bucketDead).Cursor()
			for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
				seq, err := keySeq(k)
				if err != nil {
					return err
				}
				h, err := decodeDeadRecord(seq, v)
				if err != nil {
					out = append(out, MessageInfo{Seq: seq, Err: err.Error()})
					continue
				}
				mi := h.msg.info(seq, now)
				mi.Expired = false // dead letters stay until requeued or purged
				mi.Reason, mi.At = string(h.reason), time.Unix(0, h.at)
				out = append(out, mi)
			}
			return nil
		}
		// Queued messages of all routes, merged in seq order.
		from := func(*route) uint64 { return after }
		return mergeRoutes(tx.Bucket(bucketQueue), s.rt.all, from, func(r *route, seq uint64, v []byte) (bool, error) {
			mi := MessageInfo{Seq: seq, Route: r.Name}
			if rec, err := decodeMessageRecord(seq, v); err != nil {
				mi.Err = err.Error()
			} else {
				mi = rec.info(seq, now)
				mi.Route = r.Name
			}
			out = append(out, mi)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	return out, nil
}

// RequeueDeadLetters moves the given dead letters back to the end of the
// queue, under new seqs (so a running uplink, which reads forward, sees
// them), keeping their address, source, received and expiry times. Budgets
// do not apply: it is the operator's decision. Seqs that are not dead
// letters are ignored. It returns how many were requeued, after the commit.
func (s *Store) RequeueDeadLetters(seqs ...uint64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	n, err := s.do(context.Background(), &request{kind: opRequeue, seqs: seqs})
	return int(n), err
}

// PurgeDeadLetters deletes every dead letter and returns how many. Large
// areas are deleted in several commits of at most purgeChunk records.
func (s *Store) PurgeDeadLetters() (int, error) { return s.purgeAll(true) }

// Purge deletes every queued message and returns how many, in commits of at
// most purgeChunk messages. Messages appended after the commit that emptied the
// routes stay: the room a purge makes is signalled at once, and a device that
// sends into it must not see its new message purged.
func (s *Store) Purge() (int, error) { return s.purgeAll(false) }

func (s *Store) purgeAll(dead bool) (int, error) {
	reason := ""
	if dead {
		reason = "dead"
	}
	total := 0
	for {
		n, err := s.do(context.Background(), &request{kind: opPurge, reason: reason})
		total += int(n)
		if err != nil || n < purgeChunk {
			// A chunk short of purgeChunk emptied every route (or the dead letters).
			return total, err
		}
	}
}

// requeue implements opRequeue in the committer's transaction; each message
// goes to the route its address maps to now.
func (s *Store) requeue(t *txn, seqs []uint64) (int, error) {
	n := 0
	for _, seq := range seqs {
		k := s.key(seq)
		v := t.dead.Get(k)
		if v == nil {
			continue
		}
		h, err := decodeDeadRecord(seq, v)
		if err != nil {
			continue // Check reports it; purge removes it
		}
		s.lastSeq++
		m := h.msg
		r := s.rt.lookup(string(m.address))
		if err := s.putMessage(t, r, s.lastSeq, m.received, m.expires, string(m.address), string(m.source), m.payload); err != nil {
			return 0, err
		}
		if err := t.dead.Delete(k); err != nil {
			return 0, fmt.Errorf("delete dead letter %d: %w", seq, err)
		}
		sub(&t.c.deadLetters, 1)
		sub(&t.c.deadBytes, uint64(len(m.payload)))
		n++
	}
	return n, nil
}

// purge implements opPurge: it deletes up to purgeChunk records from the
// front of the routes (in turn) or of the dead-letter area.
func (s *Store) purge(t *txn, deadLetters bool) (int, error) {
	n := 0
	if !deadLetters {
		for i, r := range s.rt.all {
			b := t.buckets[i]
			for ; n < purgeChunk; n++ {
				k, _ := b.Cursor().First()
				if k == nil {
					break
				}
				seq, err := keySeq(k)
				if err != nil {
					if err := b.Delete(k); err != nil {
						return 0, err
					}
					continue
				}
				if _, err := s.removeFrom(t, r, seq); err != nil {
					return 0, err
				}
			}
		}
		return n, nil
	}
	for ; n < purgeChunk; n++ {
		k, v := t.dead.Cursor().First()
		if k == nil {
			break
		}
		var size uint64
		if seq, err := keySeq(k); err == nil {
			if h, err := decodeDeadRecord(seq, v); err == nil {
				size = uint64(len(h.msg.payload))
			}
		}
		if err := t.dead.Delete(k); err != nil {
			return 0, err
		}
		sub(&t.c.deadLetters, 1)
		sub(&t.c.deadBytes, size)
	}
	return n, nil
}
