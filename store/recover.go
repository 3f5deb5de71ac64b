package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Recovered describes a damaged store file that Open moved aside and
// replaced by a fresh one (Options.Recover).
type Recovered struct {
	At      time.Time `json:"at"`
	MovedTo string    `json:"moved_to"` // where the damaged file is kept for inspection
	Cause   string    `json:"cause"`    // why the file was not usable
	// Salvaged is how many records (queued messages and dead letters) were
	// copied from the damaged file into the fresh one, under their seqs.
	Salvaged uint64 `json:"salvaged"`
	// Lost is how many records the damaged file's counters announced beyond
	// those salvaged; -1 if its counters were unreadable too.
	Lost int64 `json:"lost"`
}

// recoverable reports whether err from opening the file calls for moving
// it aside: not a lock held by another process, a newer layout, or a
// permission problem, which a fresh file would not cure.
func recoverable(err error) bool {
	return !errors.Is(err, ErrLocked) && !errors.Is(err, ErrSchema) &&
		!errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist)
}

// guard runs fn, turning a panic, and a memory fault in the file's mapping
// (a truncated file), into an error. bbolt panics on some damaged pages.
func guard(what string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: panic: %v", what, p)
		}
	}()
	return fn()
}

// verifyFile checks an existing file before bbolt opens it for writing:
// that a meta page is valid and the file is as long as it says (a shorter
// file would fault in bbolt's mapping), and that every bucket and record can
// be walked in a read-only open. bbolt rebuilds its freelist at a
// read-write open on a goroutine of its own, where a damaged page would
// crash the process; after this walk it meets only pages already read. It
// reads the whole file.
func verifyFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := checkMeta(path, fi.Size()); err != nil {
		return err
	}
	db, err := openReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	return guard("verify", func() error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walkBucket(b) })
		})
	})
}

// bbolt's meta page, as laid out on disk in the machine's byte order: a
// 16-byte page header, then magic, version, page size, flags (4 bytes
// each), root bucket (root page, sequence), freelist page, page count
// (high-water mark), txid and an FNV-64a checksum of what precedes it (8
// bytes each).
const (
	boltMagic    = 0xED0CDAED
	metaOffset   = 16
	metaChecksum = 56 // offset of the checksum within the meta
	metaLen      = 64
)

// checkMeta finds the newest valid meta page of the file and checks that
// the file holds all the pages it counts.
func checkMeta(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	read := func(off int64) (pageSize, pages, txid uint64, ok bool) {
		b := make([]byte, metaOffset+metaLen)
		if _, err := f.ReadAt(b, off); err != nil {
			return 0, 0, 0, false
		}
		m := b[metaOffset:]
		h := fnv.New64a()
		h.Write(m[:metaChecksum])
		if binary.NativeEndian.Uint32(m[0:]) != boltMagic || h.Sum64() != binary.NativeEndian.Uint64(m[metaChecksum:]) {
			return 0, 0, 0, false
		}
		return uint64(binary.NativeEndian.Uint32(m[8:])), binary.NativeEndian.Uint64(m[40:]), binary.NativeEndian.Uint64(m[48:]), true
	}
	pageSize, pages, txid, ok := read(0)
	second := []int64{int64(pageSize)}
	if !ok {
		second = []int64{4096, int64(os.Getpagesize()), 16384, 65536}
	}
	for _, off := range second {
		if ps, n, tx, ok1 := read(off); ok1 && ps == uint64(off) && (!ok || tx > txid) {
			pageSize, pages, txid, ok = ps, n, tx, true
			break
		}
	}
	if !ok {
		return errors.New("no valid meta page")
	}
	if need := pages * pageSize; uint64(size) < need {
		return fmt.Errorf("file is truncated: %d bytes, its %d pages need %d", size, pages, need)
	}
	return nil
}

// walkBucket touches every record of b and its sub-buckets.
func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				return walkBucket(sub)
			}
		}
		return nil
	})
}

// recoverFile moves the damaged file aside, opens a fresh one and copies
// into it every record that can be read from the damaged one. It logs at
// error level and records the result in s.recovered.
func (s *Store) recoverFile(cause error) error {
	at := time.Now()
	moved := fmt.Sprintf("%s.corrupt-%s", s.path, at.UTC().Format("20060102T150405.000Z"))
	if err := os.Rename(s.path, moved); err != nil {
		return fmt.Errorf("%w (and moving it aside failed: %w)", cause, err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("%w (and moving it aside failed: %w)", cause, err)
	}
	if err := s.openFile(false); err != nil {
		return fmt.Errorf("%w (and starting a fresh file failed: %w)", cause, err)
	}
	rec := &Recovered{At: at, MovedTo: moved, Cause: cause.Error(), Lost: -1}
	salvaged, commands, expected, err := s.salvage(moved)
	rec.Salvaged = salvaged
	if expected >= 0 {
		rec.Lost = max(expected-int64(salvaged), 0)
	}
	if err == nil {
		err = s.db.Update(func(tx *bolt.Tx) error {
			c, perRoute, err := count(tx)
			if err != nil {
				return err
			}
			return putCounters(tx.Bucket(bucketMeta), c, perRoute)
		})
	}
	if err == nil {
		err = s.db.Update(s.initialize)
	}
	if err == nil {
		err = s.loadNextExpiry()
	}
	s.recovered = rec
	s.log.Error("STORE FILE DAMAGED: moved aside and replaced by a fresh file; check the disk",
		"cause", cause, "moved_to", moved, "salvaged", rec.Salvaged, "lost", rec.Lost,
		"commands_salvaged", commands, "salvage_err", err)
	return nil
}

// salvageChunk is how many bytes of records are copied per transaction.
const salvageChunk = 4 << 20

// salvage copies the readable records of the file at old into s.db, under
// their seqs: queued messages, dead letters, and the commands waiting for their
// devices with their dead letters. It returns how many messages and dead letters
// it copied, how many commands, and how many messages and dead letters the old
// file's counters announced (-1 if unreadable).
func (s *Store) salvage(old string) (copied, commands uint64, expected int64, err error) {
	expected = -1
	// A truncated file is extended with zeros (sparse) to the length its
	// meta page announces, so that bbolt's mapping does not fault: the
	// missing pages read as damaged instead.
	if fi, err := os.Stat(old); err == nil {
		if err := checkMeta(old, fi.Size()); err != nil && strings.Contains(err.Error(), "truncated") {
			var need int64
			if _, err := fmt.Sscanf(err.Error()[strings.LastIndex(err.Error(), "need ")+5:], "%d", &need); err == nil && need > fi.Size() {
				_ = os.Truncate(old, need)
			}
		}
	}
	src, err := openReadOnly(old)
	if err != nil {
		return 0, 0, -1, err
	}
	defer src.Close()

	type record struct {
		route  string // "" for a dead letter or a command
		device string // a queued command's device; "" otherwise
		cmd    bool   // a command (queued, or dead-lettered when device is "")
		seq    uint64
		v      []byte
	}
	var (
		batch   []record
		size    int
		maxSeq  uint64
		flush   func() error
		writeEr error
	)
	flush = func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			q := tx.Bucket(bucketQueue)
			dead, exp := tx.Bucket(bucketDead), tx.Bucket(bucketExpiry)
			dead.FillPercent = 1.0
			for _, r := range batch {
				if r.cmd {
					if err := s.salvageCommand(tx, r.device, r.seq, r.v); err != nil {
						return err
					}
					maxSeq = max(maxSeq, r.seq)
					continue
				}
				b := dead
				if r.route != "" {
					var err error
					if b, err = q.CreateBucketIfNotExists([]byte(r.route)); err != nil {
						return err
					}
					b.FillPercent = 1.0
					if h, err := decodeMessageRecord(r.seq, r.v); err == nil && h.expires != 0 {
						if err := exp.Put(s.expiryKey(h.expires, r.seq), nil); err != nil {
							return err
						}
					}
				}
				if err := b.Put(seqKey(r.seq), r.v); err != nil {
					return err
				}
				maxSeq = max(maxSeq, r.seq)
			}
			if maxSeq > q.Sequence() {
				return q.SetSequence(maxSeq)
			}
			return nil
		})
		s.arena = s.arena[:0]
		for _, r := range batch {
			if r.cmd {
				commands++
			} else {
				copied++
			}
		}
		batch, size = batch[:0], 0
		return err
	}
	add := func(r record) {
		if writeEr != nil {
			return
		}
		r.v = bytes.Clone(r.v)
		batch = append(batch, r)
		v := r.v
		size += len(v)
		if size >= salvageChunk {
			writeEr = flush()
		}
	}
	_ = guard("salvage", func() error {
		return src.View(func(tx *bolt.Tx) error {
			if meta := tx.Bucket(bucketMeta); meta != nil {
				_ = guard("salvage counters", func() error {
					if c, err := decodeCounters(meta.Get(keyStats)); err == nil {
						expected = int64(c.messages + c.deadLetters)
					}
					return nil
				})
			}
			var seqMax uint64
			q := tx.Bucket(bucketQueue)
			if q != nil {
				seqMax = q.Sequence()
				// The new file's sequence goes on from the damaged file's counter,
				// not from the last seq salvaged: a seq lost with a damaged page
				// was given out (it may be a message-id upstream) and must not be
				// given out again.
				maxSeq = max(maxSeq, seqMax)
				var routes []string
				_ = guard("salvage routes", func() error {
					return q.ForEachBucket(func(k []byte) error {
						if validRouteName(string(k)) == nil {
							routes = append(routes, string(k))
						}
						return nil
					})
				})
				for _, name := range routes {
					if route := q.Bucket([]byte(name)); route != nil {
						salvageBucket(route, seqMax, func(seq uint64, v []byte) {
							if _, err := decodeMessageRecord(seq, v); err == nil {
								add(record{route: name, seq: seq, v: v})
							}
						})
					}
				}
			}
			if dead := tx.Bucket(bucketDead); dead != nil {
				salvageBucket(dead, seqMax, func(seq uint64, v []byte) {
					if _, err := decodeDeadRecord(seq, v); err == nil {
						add(record{seq: seq, v: v})
					}
				})
			}
			// The commands waiting for their devices (#13): each device's queue, then
			// the dead letters. Their counts are recounted at Open.
			if cb := tx.Bucket(bucketCmd); cb != nil {
				var devices []string
				_ = guard("salvage command queues", func() error {
					return cb.ForEachBucket(func(k []byte) error {
						devices = append(devices, string(k))
						return nil
					})
				})
				for _, dev := range devices {
					if b := cb.Bucket([]byte(dev)); b != nil {
						salvageBucket(b, seqMax, func(seq uint64, v []byte) {
							if _, err := decodeCmdRecord(v); err == nil {
								add(record{device: dev, cmd: true, seq: seq, v: v})
							}
						})
					}
				}
			}
			if b := tx.Bucket(bucketCmdDead); b != nil {
				salvageBucket(b, seqMax, func(seq uint64, v []byte) {
					if _, err := decodeCmdDead(v); err == nil {
						add(record{cmd: true, seq: seq, v: v})
					}
				})
			}
			return nil
		})
	})
	if writeEr == nil {
		writeEr = flush()
	}
	if writeEr == nil {
		writeEr = s.db.Update(func(tx *bolt.Tx) error {
			if q := tx.Bucket(bucketQueue); maxSeq > q.Sequence() {
				return q.SetSequence(maxSeq)
			}
			return nil
		})
	}
	return copied, commands, expected, writeEr
}

// salvageCommand puts a salvaged command record into the fresh file: a queued one
// (device set) with its expiry entry, or a dead-lettered one.
func (s *Store) salvageCommand(tx *bolt.Tx, device string, seq uint64, v []byte) error {
	if device == "" {
		b, err := tx.CreateBucketIfNotExists(bucketCmdDead)
		if err != nil {
			return err
		}
		return b.Put(seqKey(seq), v)
	}
	cb, err := tx.CreateBucketIfNotExists(bucketCmd)
	if err != nil {
		return err
	}
	dev, err := cb.CreateBucketIfNotExists([]byte(device))
	if err != nil {
		return err
	}
	dev.FillPercent = 1.0
	exp, err := tx.CreateBucketIfNotExists(bucketCmdExp)
	if err != nil {
		return err
	}
	if h, err := decodeCmdRecord(v); err == nil {
		if err := exp.Put(s.cmdExpKey(h.expires, seq), []byte(device)); err != nil {
			return err
		}
	}
	return dev.Put(seqKey(seq), v)
}

// openReadOnly opens a damaged file for salvage, without its lock holding
// anyone up and without rebuilding the freelist.
func openReadOnly(path string) (db *bolt.DB, err error) {
	err = guard("open damaged file", func() error {
		db, err = bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		return err
	})
	return db, err
}

// salvageBucket calls fn for every record of b that can be reached. When
// bbolt panics on a damaged page it seeks past it, further each time, up to
// seqMax (the file's sequence counter, 0 if unknown).
func salvageBucket(b *bolt.Bucket, seqMax uint64, fn func(seq uint64, v []byte)) {
	next, skip := uint64(0), uint64(1)
	for range 64 {
		last := next
		err := guard("salvage walk", func() error {
			c := b.Cursor()
			for k, v := c.Seek(seqKey(next)); k != nil; k, v = c.Next() {
				seq, err := keySeq(k)
				if err != nil || seq < next {
					continue
				}
				last = seq
				if v != nil {
					fn(seq, v)
				}
			}
			return nil
		})
		if err == nil {
			return
		}
		next = max(last+1, next) + skip
		skip *= 4
		if seqMax != 0 && next > seqMax {
			return
		}
	}
}
