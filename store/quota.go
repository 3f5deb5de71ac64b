package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// freeEvery is how often the committer asks the file system for its free
// space when Options.MinFree is set.
const freeEvery = 100 * time.Millisecond

// refreshFree updates s.free from statfs if MinFree is set and the last
// measurement is older than freeEvery (or force is set). It runs on the
// committer goroutine (or in Open before it starts).
func (s *Store) refreshFree(force bool) {
	if s.opts.MinFree == 0 {
		return
	}
	now := time.Now()
	if !force && now.Sub(s.freeAt) < freeEvery {
		return
	}
	s.freeAt = now
	free, err := freeSpace(s.path)
	if err != nil {
		// Unknown: do not block the gateway on a failing statfs.
		s.free = s.opts.MinFree
		return
	}
	s.free = free
}

// diskLow reports whether the file system has less than MinFree free.
func (s *Store) diskLow() bool { return s.opts.MinFree > 0 && s.free < s.opts.MinFree }

// overBudget returns which budget adding n payload bytes as one more
// message to c would exceed, or "".
func (s *Store) overBudget(c *counters, n uint64) string {
	switch {
	case s.opts.MaxMessages > 0 && c.messages+1 > s.opts.MaxMessages:
		return "max-messages"
	case s.opts.MaxBytes > 0 && c.bytes+n > s.opts.MaxBytes:
		return "max-bytes"
	case s.diskLow():
		return "min-free"
	}
	return ""
}

// makeRoom checks that a message of n payload bytes fits the budgets. With
// DropOldest it deletes the oldest queued messages until it does (under
// MinFree: as many payload bytes as the new message brings, so that the file
// need not grow). It returns the budget that still refuses the message, or
// "" if it may be stored.
func (s *Store) makeRoom(route, exp *bolt.Bucket, c *counters, n uint64) (string, error) {
	why := s.overBudget(c, n)
	if why == "" || s.opts.WhenFull != DropOldest {
		return why, nil
	}
	if s.opts.MaxBytes > 0 && n > s.opts.MaxBytes {
		return "max-bytes", nil // would not fit an empty queue
	}
	freed := uint64(0)
	for why != "" {
		if why == "min-free" && freed >= n {
			return "", nil
		}
		k, _ := route.Cursor().First()
		if k == nil {
			return why, nil
		}
		seq, err := keySeq(k)
		if err != nil {
			return "", err
		}
		m, err := s.removeMessage(route, exp, c, seq)
		if err != nil {
			return "", err
		}
		freed += m
		if s.pend.dropped == 0 {
			s.pend.dropFirst = seq
			s.pend.dropWhy = why
		}
		s.pend.dropped++
		s.pend.dropLast = seq
		why = s.overBudget(c, n)
	}
	return "", nil
}

// putMessage stores a message record under seq and indexes its expiry.
func (s *Store) putMessage(route, exp *bolt.Bucket, c *counters, seq uint64, received, expires int64, address, source string, payload []byte) error {
	k := s.key(seq)
	start := len(s.arena)
	s.arena = appendMessageRecordV2(s.arena, received, expires, address, source, payload)
	if err := route.Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
		return fmt.Errorf("put %d: %w", seq, err)
	}
	if expires != 0 {
		if err := exp.Put(s.expiryKey(expires, seq), nil); err != nil {
			return fmt.Errorf("put expiry %d: %w", seq, err)
		}
		if s.nextExp == 0 || expires < s.nextExp {
			s.nextExp = expires
		}
	}
	c.messages++
	c.bytes += uint64(len(payload))
	return nil
}

// removeMessage deletes the queued message seq and its expiry index entry,
// if it is queued, and returns its payload size.
func (s *Store) removeMessage(route, exp *bolt.Bucket, c *counters, seq uint64) (uint64, error) {
	k := s.key(seq)
	v := route.Get(k)
	if v == nil {
		return 0, nil
	}
	n := uint64(len(v))
	h, err := decodeMessageRecord(seq, v)
	if err == nil {
		n = uint64(len(h.payload))
		if h.expires != 0 {
			if err := exp.Delete(s.expiryKey(h.expires, seq)); err != nil {
				return 0, fmt.Errorf("delete expiry %d: %w", seq, err)
			}
		}
	}
	if err := route.Delete(k); err != nil {
		return 0, fmt.Errorf("delete %d: %w", seq, err)
	}
	sub(&c.messages, 1)
	sub(&c.bytes, n)
	return n, nil
}

// updateFull recomputes Full from the last commit's outcome, the budgets
// and the free space.
func (s *Store) updateFull() {
	c := s.persisted
	why := ""
	switch {
	case s.diskFull:
		why = "disk"
	case s.opts.WhenFull == DropOldest:
		// Room is made by dropping; only an empty queue leaves none.
		if s.diskLow() && c.messages == 0 {
			why = "min-free"
		}
	case s.opts.MaxMessages > 0 && c.messages >= s.opts.MaxMessages:
		why = "max-messages"
	case s.opts.MaxBytes > 0 && c.bytes >= s.opts.MaxBytes:
		why = "max-bytes"
	case s.diskLow():
		why = "min-free"
	case s.refused != "" && c.bytes >= s.refusedAt:
		why = s.refused
	}
	if s.refused != "" && c.bytes < s.refusedAt {
		s.refused = ""
	}
	if why != s.fullWhy {
		if why != "" {
			s.log.Warn("store full: devices get no credit until there is room", "reason", why,
				"messages", c.messages, "bytes", c.bytes, "free", s.free)
		} else {
			s.log.Info("store has room again", "messages", c.messages, "bytes", c.bytes)
		}
	}
	s.fullWhy = why
	s.full.Store(why != "")
}

func (s *Store) fullReason() string { return s.fullWhy }

// dropBurst gathers drops of the oldest messages into one log line per
// burst: the line is written once no drop happened for dropQuiet, or every
// dropReport while drops go on.
type dropBurst struct {
	n           uint64
	first, last uint64
	why         string
	start, at   time.Time
}

const (
	dropQuiet  = time.Second
	dropReport = time.Minute
)

func (d *dropBurst) add(p pending, now time.Time) {
	if d.n == 0 {
		d.first, d.why, d.start = p.dropFirst, p.dropWhy, now
	}
	d.n += p.dropped
	d.last = p.dropLast
	d.at = now
}

// flush logs the burst if it ended or has gone on for dropReport.
func (s *Store) flushDrops(now time.Time) {
	d := &s.dropLog
	if d.n == 0 || (now.Sub(d.at) < dropQuiet && now.Sub(d.start) < dropReport) {
		return
	}
	s.log.Warn("dropped the oldest messages to make room (when-full = drop-oldest)",
		"dropped", d.n, "first_seq", d.first, "last_seq", d.last, "reason", d.why,
		"during", now.Sub(d.start).Round(time.Millisecond), "dropped_total", s.since.dropped)
	*d = dropBurst{}
}
