package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// checkCommands is Check's part for the device-bound queues (command.go): every
// command record and command dead letter decodes, no key is above the sequence
// counter seqMax, each device's queued count and bytes and the totals the committer
// holds match the records, every queued command has exactly its expiry entry and
// every expiry entry points at a queued command with that expiry, and the persisted
// command totals are readable and are the ones the committer holds. It runs on the
// committer goroutine (the committed cmdState is stable) and returns one error per
// problem, each naming the device and seq.
func (s *Store) checkCommands(tx *bolt.Tx, seqMax uint64) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("commands: "+format, args...))
	}
	c := &s.cmd
	cb, dead, exp := tx.Bucket(bucketCmd), tx.Bucket(bucketCmdDead), tx.Bucket(bucketCmdExp)
	if cb != nil && exp == nil {
		bad("bucket %s missing beside %s", bucketCmdExp, bucketCmd)
	}

	// The queues, device by device.
	type cmdKey struct {
		device string
		seq    uint64
	}
	expires := map[cmdKey]int64{} // every decodable queued command
	damaged := map[cmdKey]bool{}  // undecodable ones, reported once
	found := map[string]cmdCount{}
	var total cmdCount
	if cb != nil {
		_ = cb.ForEach(func(name, v []byte) error {
			dev := string(name)
			if v != nil {
				bad("key %q in %s is a value, not a device queue", name, bucketCmd)
				return nil
			}
			var cc cmdCount
			_ = cb.Bucket(name).ForEach(func(k, v []byte) error {
				seq, err := keySeq(k)
				if err != nil {
					bad("device %s: %w", dev, err)
					return nil
				}
				if seq > seqMax {
					bad("device %s: command %d above sequence counter %d", dev, seq, seqMax)
				}
				h, err := decodeCmdRecord(v)
				if err != nil {
					bad("device %s: command %d: %w", dev, seq, err)
					damaged[cmdKey{dev, seq}] = true
					return nil
				}
				cc.n++
				cc.bytes += uint64(len(h.payload))
				expires[cmdKey{dev, seq}] = h.expires
				if exp != nil && !bytes.Equal(exp.Get(cmdExpIndexKey(h.expires, seq)), name) {
					bad("device %s: command %d has no expiry entry", dev, seq)
				}
				return nil
			})
			if cc.n > 0 {
				found[dev] = cc
			}
			total.n += cc.n
			total.bytes += cc.bytes
			return nil
		})
	}

	// The counts the committer keeps (recounted at Open, then kept in step by every
	// commit) against the records.
	devs := make([]string, 0, len(found)+len(c.devices))
	for dev := range found {
		devs = append(devs, dev)
	}
	for dev := range c.devices {
		if _, ok := found[dev]; !ok {
			devs = append(devs, dev)
		}
	}
	sort.Strings(devs)
	for _, dev := range devs {
		if got, want := c.devices[dev], found[dev]; got != want {
			bad("device %s: counted %d commands of %d bytes, records hold %d of %d bytes", dev, got.n, got.bytes, want.n, want.bytes)
		}
	}
	if c.n != total.n || c.bytes != total.bytes {
		bad("counted %d commands of %d bytes in total, records hold %d of %d bytes", c.n, c.bytes, total.n, total.bytes)
	}

	// The expiry index: each entry names a queued command with that expiry.
	if exp != nil {
		_ = exp.ForEach(func(k, v []byte) error {
			if len(k) != 16 {
				bad("expiry entry %x: length %d, want 16: %w", k, len(k), ErrCorrupt)
				return nil
			}
			at, seq := int64(binary.BigEndian.Uint64(k)), binary.BigEndian.Uint64(k[8:])
			e, ok := expires[cmdKey{string(v), seq}]
			switch {
			case !ok && damaged[cmdKey{string(v), seq}]:
				// Reported with the record.
			case !ok:
				bad("expiry entry for command %d of device %s points at no queued command", seq, v)
			case e != at:
				bad("expiry entry for command %d of device %s says %d, the command %d", seq, v, at, e)
			}
			return nil
		})
	}

	// The dead letters.
	var deadN uint64
	if dead != nil {
		_ = dead.ForEach(func(k, v []byte) error {
			seq, err := keySeq(k)
			if err != nil {
				bad("dead letters: %w", err)
				return nil
			}
			if seq > seqMax {
				bad("dead letter %d above sequence counter %d", seq, seqMax)
			}
			if _, err := decodeCmdDead(v); err != nil {
				bad("dead letter %d: %w", seq, err)
				return nil
			}
			deadN++
			return nil
		})
	}
	if deadN != c.deadN {
		bad("counted %d dead letters, records hold %d", c.deadN, deadN)
	}

	// The persisted totals (delivered, expired, ...): readable, and the ones the
	// committer holds and will write next.
	if v := tx.Bucket(bucketMeta).Get(keyCmdTotals); v != nil {
		if len(v) != 40 {
			bad("totals record of %d bytes, want 40: %w", len(v), ErrCorrupt)
		} else if got := decodeCmdTotals(v); got != c.totals {
			bad("totals record %+v, committer holds %+v", got, c.totals)
		}
	} else if c.totals != (cmdTotals{}) {
		bad("totals record missing, committer holds %+v", c.totals)
	}
	return errs
}

// cmdExpIndexKey is the cmdexp key of a command, allocated (cmdExpKey uses the
// committer's arena, which belongs to the transaction being built).
func cmdExpIndexKey(exp int64, seq uint64) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(exp))
	return appendSeqKey(k, seq)
}
