package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ReadBytes bounds the payload bytes one ReadNext or ReadNextFunc returns: the
// messages are copies, and up to max messages of the largest size a device may send
// (a megabyte, say) would be more memory than a small board has. A read stops once
// its messages hold ReadBytes; it returns at least one message, of any size.
const ReadBytes = 4 << 20

// ReadNextFunc is ReadNext with a filter: skip is called, inside the read
// transaction, with the seq and the address of each message ReadNext would
// return (address is valid only during the call, and must not be kept). A
// message it skips is passed over as if it had been read, without being
// copied, and does not count towards max. A forwarder uses it to pass over
// the messages of addresses it holds back, and those it has in flight,
// without copying them only to drop them. A nil skip skips nothing: ReadNext
// is ReadNextFunc without a filter.
func (s *Store) ReadNextFunc(c *Cursor, max int, skip func(seq uint64, address []byte) bool) ([]Message, error) {
	if max <= 0 {
		return nil, nil
	}
	// The cursor moves only if the call succeeds: a reader that gets an error
	// (a corrupt record, which it may dead-letter) reads the same messages
	// again.
	moved := map[*route]uint64{}
	var msgs []Message
	err := s.view(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueue)
		all := s.rt.all
		for i := 0; i < len(all) && len(msgs) == 0; {
			j := i + 1
			for j < len(all) && all[j].Priority == all[i].Priority {
				j++
			}
			var err error
			msgs, err = s.readMerged(q, all[i:j], func(r *route) uint64 { return c.after[r.Name] },
				func(r *route, seq uint64) { moved[r] = seq }, max, skip)
			if err != nil {
				return err
			}
			i = j
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	if c.after == nil {
		c.after = map[string]uint64{}
	}
	for r, seq := range moved {
		c.after[r.Name] = seq
	}
	return msgs, nil
}

// readMerged reads up to max messages from the routes, each after its own
// position, merged in seq order, skipping expired ones and those skip (if not
// nil) passes over. seen is called with every seq read or skipped, per route,
// in order.
func (s *Store) readMerged(q *bolt.Bucket, routes []*route, after func(*route) uint64, seen func(*route, uint64), max int, skip func(uint64, []byte) bool) ([]Message, error) {
	var msgs []Message
	var str interner
	bytes := 0
	now := s.opts.Clock.Now().UnixNano()
	err := mergeRoutes(q, routes, after, func(r *route, seq uint64, v []byte) (bool, error) {
		rec, err := decodeMessageRecord(seq, v)
		if err != nil {
			return false, err
		}
		seen(r, seq)
		if rec.expired(now) || (skip != nil && skip(seq, rec.address)) { // expired ones are deleted by the committer
			return true, nil
		}
		if msgs == nil {
			msgs = make([]Message, 0, min(max, 256))
		}
		m := rec.message(seq, &str)
		m.Route = r.Name
		msgs = append(msgs, m)
		bytes += len(m.Payload)
		return len(msgs) < max && bytes < ReadBytes, nil
	})
	return msgs, err
}
