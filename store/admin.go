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
		b := tx.Bucket(bucket)
		if string(bucket) == string(bucketQueue) {
			b = b.Bucket(routeDefault)
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			seq, err := keySeq(k)
			if err != nil {
				return err
			}
			if string(bucket) == string(bucketDead) {
				h, err := decodeDeadRecord(seq, v)
				if err != nil {
					out = append(out, MessageInfo{Seq: seq, Err: err.Error()})
					continue
				}
				mi := h.msg.info(seq, now)
				mi.Expired = false // dead letters stay until requeued or purged
				mi.Reason, mi.At = string(h.reason), time.Unix(0, h.at)
				out = append(out, mi)
				continue
			}
			h, err := decodeMessageRecord(seq, v)
			if err != nil {
				out = append(out, MessageInfo{Seq: seq, Err: err.Error()})
				continue
			}
			out = append(out, h.info(seq, now))
		}
		return nil
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
// most purgeChunk messages. Messages appended meanwhile may be deleted too.
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
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// requeue implements opRequeue in the committer's transaction.
func (s *Store) requeue(route, dead, exp *bolt.Bucket, c *counters, seqs []uint64) (int, error) {
	n := 0
	for _, seq := range seqs {
		k := s.key(seq)
		v := dead.Get(k)
		if v == nil {
			continue
		}
		h, err := decodeDeadRecord(seq, v)
		if err != nil {
			continue // Check reports it; purge removes it
		}
		s.lastSeq++
		m := h.msg
		if err := s.putMessage(route, exp, c, s.lastSeq, m.received, m.expires, string(m.address), string(m.source), m.payload); err != nil {
			return 0, err
		}
		if err := dead.Delete(k); err != nil {
			return 0, fmt.Errorf("delete dead letter %d: %w", seq, err)
		}
		sub(&c.deadLetters, 1)
		sub(&c.deadBytes, uint64(len(m.payload)))
		n++
	}
	return n, nil
}

// purge implements opPurge: it deletes up to purgeChunk records from the
// front of the queue or of the dead-letter area.
func (s *Store) purge(route, dead, exp *bolt.Bucket, c *counters, deadLetters bool) (int, error) {
	n := 0
	for ; n < purgeChunk; n++ {
		if !deadLetters {
			k, _ := route.Cursor().First()
			if k == nil {
				break
			}
			seq, err := keySeq(k)
			if err != nil {
				if err := route.Delete(k); err != nil {
					return 0, err
				}
				continue
			}
			if _, err := s.removeMessage(route, exp, c, seq); err != nil {
				return 0, err
			}
			continue
		}
		k, v := dead.Cursor().First()
		if k == nil {
			break
		}
		var size uint64
		if seq, err := keySeq(k); err == nil {
			if h, err := decodeDeadRecord(seq, v); err == nil {
				size = uint64(len(h.msg.payload))
			}
		}
		if err := dead.Delete(k); err != nil {
			return 0, err
		}
		sub(&c.deadLetters, 1)
		sub(&c.deadBytes, size)
	}
	return n, nil
}
