package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ReadCommands returns up to max queued commands of device with a seq above after,
// in order, skipping expired ones. It runs in a read transaction, concurrently with
// the committer.
func (s *Store) ReadCommands(device string, after uint64, max int) ([]Command, error) {
	var out []Command
	now := s.opts.Clock.Now().UnixNano()
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCmd)
		if b == nil {
			return nil
		}
		if b = b.Bucket([]byte(device)); b == nil {
			return nil
		}
		cur := b.Cursor()
		var seek [8]byte
		binary.BigEndian.PutUint64(seek[:], after+1)
		for k, v := cur.Seek(seek[:]); k != nil && len(out) < max; k, v = cur.Next() {
			if len(k) != 8 {
				continue
			}
			h, err := decodeCmdRecord(v)
			if err != nil {
				return fmt.Errorf("command %d of %s: %w", binary.BigEndian.Uint64(k), device, err)
			}
			if h.expires <= now {
				continue
			}
			out = append(out, h.command(binary.BigEndian.Uint64(k), device))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read commands: %w", err)
	}
	return out, nil
}

// CommandQueues lists the devices with queued commands or command dead letters.
func (s *Store) CommandQueues() ([]CommandQueue, error) {
	var out []CommandQueue
	idx := map[string]int{}
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCmd); b != nil {
			err := b.ForEachBucket(func(dev []byte) error {
				q := CommandQueue{Device: string(dev)}
				db := b.Bucket(dev)
				first := true
				err := db.ForEach(func(k, v []byte) error {
					if h, err := decodeCmdRecord(v); err == nil {
						if first {
							q.Oldest, first = time.Unix(0, h.received), false
						}
						q.Messages++
						q.Bytes += uint64(len(h.payload))
					}
					return nil
				})
				if q.Messages > 0 {
					idx[q.Device] = len(out)
					out = append(out, q)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketCmdDead); b != nil {
			return b.ForEach(func(k, v []byte) error {
				d, err := decodeCmdDead(v)
				if err != nil {
					return nil
				}
				i, ok := idx[d.Device]
				if !ok {
					i = len(out)
					idx[d.Device] = i
					out = append(out, CommandQueue{Device: d.Device})
				}
				out[i].DeadLetters++
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: command queues: %w", err)
	}
	return out, nil
}

// CommandDeadLetters returns up to max command dead letters of device ("" for all),
// oldest first.
func (s *Store) CommandDeadLetters(device string, max int) ([]CommandDeadLetter, error) {
	var out []CommandDeadLetter
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCmdDead)
		if b == nil {
			return nil
		}
		cur := b.Cursor()
		for k, v := cur.First(); k != nil && len(out) < max; k, v = cur.Next() {
			d, err := decodeCmdDead(v)
			if err != nil || (device != "" && d.Device != device) {
				continue
			}
			if len(k) == 8 {
				d.Seq = binary.BigEndian.Uint64(k)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: command dead letters: %w", err)
	}
	return out, nil
}
