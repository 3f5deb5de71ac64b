package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// loadCounters loads the persisted counters into s, and reports whether they
// were all there, readable and consistent.
func (s *Store) loadCounters(meta *bolt.Bucket) bool {
	c, err := decodeCounters(meta.Get(keyStats))
	if err != nil {
		if meta.Get(keyStats) != nil {
			s.log.Warn("stats record unreadable, recounting")
		}
		return false
	}
	var sum counters
	for _, r := range s.rt.all {
		rc, ok := decodeRouteCounters(meta.Get(routeStatsKey(r.Name)))
		if !ok {
			return false // a new route, or a file from before routes
		}
		r.count = rc
		sum.messages += rc.messages
		sum.bytes += rc.bytes
	}
	if sum.messages != c.messages || sum.bytes != c.bytes {
		s.log.Warn("route counters do not add up to the totals, recounting")
		return false
	}
	s.persisted = c
	return true
}

// putCounters writes the totals and the counters of every route.
func putCounters(meta *bolt.Bucket, c counters, perRoute map[string]counters) error {
	if err := meta.Put(keyStats, c.encode()); err != nil {
		return err
	}
	for name, rc := range perRoute {
		if err := meta.Put(routeStatsKey(name), rc.encodeRoute()); err != nil {
			return err
		}
	}
	return nil
}

// count computes the counters, the totals and per route, by scanning all
// records.
func count(tx *bolt.Tx) (counters, map[string]counters, error) {
	var c counters
	perRoute := map[string]counters{}
	q := tx.Bucket(bucketQueue)
	err := q.ForEachBucket(func(name []byte) error {
		var rc counters
		err := q.Bucket(name).ForEach(func(k, v []byte) error {
			seq, err := keySeq(k)
			if err != nil {
				return err
			}
			h, err := decodeMessageRecord(seq, v)
			if err != nil {
				return err
			}
			rc.messages++
			rc.bytes += uint64(len(h.payload))
			return nil
		})
		perRoute[string(name)] = rc
		c.messages += rc.messages
		c.bytes += rc.bytes
		return err
	})
	if err != nil {
		return c, nil, err
	}
	err = tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
		seq, err := keySeq(k)
		if err != nil {
			return err
		}
		h, err := decodeDeadRecord(seq, v)
		if err != nil {
			return err
		}
		c.deadLetters++
		c.deadBytes += uint64(len(h.msg.payload))
		return nil
	})
	return c, perRoute, err
}

// The store counts with two structs, each used wherever its concept is:
//
//   - counters: what is held, messages and payload bytes (and, for the whole
//     file, dead letters): the file's totals in meta/stats, each route's in
//     meta/route/NAME (only messages and bytes), and the transaction's.
//   - tally: what happened to messages (dropped to make room, refused,
//     expired): in the transaction being built (pending), since Open
//     (sinceOpen), and over the life of the file in meta/totals (dropped and
//     expired only).

// counters are what the file, a route or a transaction holds. They are stored
// in meta/stats (the file) and meta/route/NAME (a route) and updated in the
// same transaction as the data they count.
type counters struct {
	messages    uint64
	bytes       uint64
	deadLetters uint64
	deadBytes   uint64
}

// encode returns the version 1 encoding of c.
func (c counters) encode() []byte {
	b := make([]byte, 0, statsRecordLen)
	b = append(b, statsRecordV1)
	b = binary.BigEndian.AppendUint64(b, c.messages)
	b = binary.BigEndian.AppendUint64(b, c.bytes)
	b = binary.BigEndian.AppendUint64(b, c.deadLetters)
	return binary.BigEndian.AppendUint64(b, c.deadBytes)
}

// decodeCounters parses a stats record.
func decodeCounters(v []byte) (counters, error) {
	if len(v) != statsRecordLen || v[0] != statsRecordV1 {
		return counters{}, fmt.Errorf("stats record: version %d, %d bytes: %w", firstByte(v), len(v), ErrCorrupt)
	}
	return counters{
		messages:    binary.BigEndian.Uint64(v[1:]),
		bytes:       binary.BigEndian.Uint64(v[9:]),
		deadLetters: binary.BigEndian.Uint64(v[17:]),
		deadBytes:   binary.BigEndian.Uint64(v[25:]),
	}, nil
}

// tally counts what happened to messages.
type tally struct {
	dropped  uint64 // dropped to make room (WhenFull DropOldest)
	rejected uint64 // appends refused with ErrFull
	expired  uint64 // deleted because they expired
}

// add adds o to t.
func (t *tally) add(o tally) {
	t.dropped += o.dropped
	t.rejected += o.rejected
	t.expired += o.expired
}

const totalsRecordLen = 1 + 2*8

// encodeTotals returns the meta/totals record: the dropped and expired counts
// over the life of the file.
func (t tally) encodeTotals() []byte {
	b := make([]byte, 0, totalsRecordLen)
	b = append(b, statsRecordV1)
	b = binary.BigEndian.AppendUint64(b, t.dropped)
	return binary.BigEndian.AppendUint64(b, t.expired)
}

// decodeTotals parses a totals record; a missing or unreadable one (a file
// from before totals, or damaged) counts from zero.
func decodeTotals(v []byte) tally {
	if len(v) != totalsRecordLen || v[0] != statsRecordV1 {
		return tally{}
	}
	return tally{dropped: binary.BigEndian.Uint64(v[1:]), expired: binary.BigEndian.Uint64(v[9:])}
}

// sub subtracts n from *c without wrapping below zero; counters can only go
// wrong that way if the file was corrupted, which Check reports.
func sub(c *uint64, n uint64) {
	if n > *c {
		*c = 0
		return
	}
	*c -= n
}

// routeStatsKey is the meta key of a route's persisted counters.
func routeStatsKey(name string) []byte { return []byte("route/" + name) }

const routeStatsLen = 1 + 2*8

func (c counters) encodeRoute() []byte {
	b := make([]byte, 0, routeStatsLen)
	b = append(b, statsRecordV1)
	b = binary.BigEndian.AppendUint64(b, c.messages)
	return binary.BigEndian.AppendUint64(b, c.bytes)
}

func decodeRouteCounters(v []byte) (counters, bool) {
	if len(v) != routeStatsLen || v[0] != statsRecordV1 {
		return counters{}, false
	}
	return counters{messages: binary.BigEndian.Uint64(v[1:]), bytes: binary.BigEndian.Uint64(v[9:])}, true
}

// putCounts writes the totals and the counters of the routes t changed.
func (s *Store) putCounts(t *txn) error {
	if err := t.meta.Put(keyStats, t.c.encode()); err != nil {
		return fmt.Errorf("put stats: %w", err)
	}
	for i, r := range s.rt.all {
		if t.dirty[i] {
			if err := t.meta.Put(routeStatsKey(r.Name), t.rc[i].encodeRoute()); err != nil {
				return fmt.Errorf("put stats of route %s: %w", r.Name, err)
			}
		}
	}
	return nil
}

// sinceOpen holds the counters that start at zero with every Open.
type sinceOpen struct {
	tally
	commits      uint64
	commitErrors uint64
	appended     uint64
	compactions  uint64
}

// pending counts what the transaction being built did; it is added to
// sinceOpen if the transaction commits.
type pending struct {
	tally
	dropFirst, dropLast uint64 // seqs of the first and last dropped message
	dropWhy, dropRoute  string
}
