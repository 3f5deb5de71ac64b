package store

import (
	"strings"
	"time"
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
// message to route r would exceed, or "", and whether it is the route's own.
func (s *Store) overBudget(t *txn, r *route, n uint64) (why string, own bool) {
	rc := t.rc[r.idx]
	switch {
	case r.MaxMessages > 0 && rc.messages+1 > r.MaxMessages:
		return "route max-messages", true
	case r.MaxBytes > 0 && rc.bytes+n > r.MaxBytes:
		return "route max-bytes", true
	case s.opts.MaxMessages > 0 && t.c.messages+1 > s.opts.MaxMessages:
		return "max-messages", false
	case s.opts.MaxBytes > 0 && t.c.bytes+n > s.opts.MaxBytes:
		return "max-bytes", false
	case s.diskLow():
		return "min-free", false
	}
	return "", false
}

// victim returns the route whose oldest message is dropped to make room for
// a message on route r, or nil if none may be: for the route's own budget, r
// itself if it is DropOldest; for the store's, the lowest-priority DropOldest
// route below r's priority that has messages, else r itself if it is
// DropOldest. A route never loses messages to one of lower or equal priority
// but itself.
func (s *Store) victim(rc []counters, r *route, own bool) *route {
	if !own {
		for _, v := range s.rt.lowFirst {
			if v.Priority >= r.Priority {
				break
			}
			if rc[v.idx].messages > 0 {
				return v
			}
		}
	}
	if r.WhenFull == DropOldest && rc[r.idx].messages > 0 {
		return r
	}
	return nil
}

// makeRoom checks that a message of n payload bytes fits the budgets of route
// r and of the store, dropping the oldest messages of victim routes until it
// does (under MinFree: as many payload bytes as the new message brings, so
// that the file need not grow). It returns the budget that still refuses the
// message, or "" if it may be stored.
func (s *Store) makeRoom(t *txn, r *route, n uint64) (string, error) {
	if why := s.tooLarge(r, n); why != "" {
		return why, nil
	}
	freed := uint64(0)
	for {
		why, own := s.overBudget(t, r, n)
		if why == "" || why == "min-free" && freed >= n {
			return "", nil
		}
		v := s.victim(t.rc, r, own)
		if v == nil {
			return why, nil
		}
		k, _ := t.buckets[v.idx].Cursor().First()
		if k == nil {
			return why, nil // the counters were wrong; Check reports it
		}
		seq, err := keySeq(k)
		if err != nil {
			return "", err
		}
		m, err := s.removeFrom(t, v, seq)
		if err != nil {
			return "", err
		}
		freed += m
		if s.pend.dropped == 0 {
			s.pend.dropFirst = seq
			s.pend.dropWhy = why
			s.pend.dropRoute = v.Name
		}
		s.pend.dropped++
		s.pend.dropLast = seq
		t.dropped[v.idx]++
	}
}

// tooLarge says which budget a message of n payload bytes exceeds on its own,
// so that it would not fit an empty route or store; "" if none.
func (s *Store) tooLarge(r *route, n uint64) string {
	switch {
	case r.MaxBytes > 0 && n > r.MaxBytes:
		return "route max-bytes"
	case s.opts.MaxBytes > 0 && n > s.opts.MaxBytes:
		return "max-bytes"
	}
	return ""
}

// refuse remembers that route r refused an append because of budget why, so
// that FullFor stays true for the route until the queue (the route's or the
// store's, after why) shrinks below what it holds now.
func (s *Store) refuse(t *txn, r *route, why string) {
	r.refused, r.refusedAt = why, t.c.bytes
	if strings.HasPrefix(why, "route ") {
		r.refusedAt = t.rc[r.idx].bytes
	}
}

// updateFull recomputes, for every route, whether it can take a message,
// from the last commit's outcome, the budgets and the free space, and
// publishes the result for Full and FullFor.
func (s *Store) updateFull() {
	c := s.persisted
	rc := make([]counters, len(s.rt.all))
	for i, r := range s.rt.all {
		rc[i] = r.count
	}
	reasons := make([]string, len(s.rt.all))
	all, roomed := true, false
	for i, r := range s.rt.all {
		why := s.routeFullReason(r, c, rc)
		roomed = roomed || (why == "" && r.fullWhy != "")
		if why != r.fullWhy && !r.orphan {
			if why != "" {
				s.log.Warn("store full: devices sending to this route get no credit until there is room",
					"route", r.Name, "reason", why, "route_messages", rc[i].messages, "route_bytes", rc[i].bytes,
					"messages", c.messages, "bytes", c.bytes, "free", s.free)
			} else {
				s.log.Info("store has room again", "route", r.Name, "route_messages", rc[i].messages,
					"messages", c.messages, "bytes", c.bytes)
			}
		}
		r.fullWhy = why
		reasons[i] = why
		all = all && (why != "" || r.orphan)
	}
	s.fullWhy = ""
	if all {
		s.fullWhy = reasons[s.rt.dflt.idx]
	}
	s.routeFull.Store(&reasons)
	s.full.Store(all)
	if roomed {
		s.room.fire()
	}
}

// routeFullReason says why route r cannot take a message now, or "".
func (s *Store) routeFullReason(r *route, c counters, rc []counters) string {
	own := rc[r.idx]
	if r.refused != "" {
		at := c.bytes
		if strings.HasPrefix(r.refused, "route ") {
			at = own.bytes
		}
		if at < r.refusedAt {
			r.refused = ""
		}
	}
	switch {
	case s.diskFull:
		return "disk"
	case r.WhenFull == Backpressure && r.MaxMessages > 0 && own.messages >= r.MaxMessages:
		return "route max-messages"
	case r.WhenFull == Backpressure && r.MaxBytes > 0 && own.bytes >= r.MaxBytes:
		return "route max-bytes"
	}
	why := ""
	switch {
	case s.opts.MaxMessages > 0 && c.messages >= s.opts.MaxMessages:
		why = "max-messages"
	case s.opts.MaxBytes > 0 && c.bytes >= s.opts.MaxBytes:
		why = "max-bytes"
	case s.diskLow():
		why = "min-free"
	}
	if why != "" && s.victim(rc, r, false) != nil {
		why = "" // room is made by dropping
	}
	if why == "" && r.refused != "" && (r.WhenFull == Backpressure || !strings.HasPrefix(r.refused, "route ")) {
		why = r.refused
	}
	return why
}

func (s *Store) fullReason() string { return s.fullWhy }

// dropBurst gathers drops of the oldest messages into one log line per
// burst: the line is written once no drop happened for dropQuiet, or every
// dropReport while drops go on.
type dropBurst struct {
	n           uint64
	first, last uint64
	why, route  string
	start, at   time.Time
}

const (
	dropQuiet  = time.Second
	dropReport = time.Minute
)

func (d *dropBurst) add(p pending, now time.Time) {
	if d.n == 0 {
		d.first, d.why, d.route, d.start = p.dropFirst, p.dropWhy, p.dropRoute, now
	}
	d.n += p.dropped
	d.last = p.dropLast
	d.at = now
}

// flushDrops logs the burst if it ended or has gone on for dropReport, or if
// force is set (the committer exits).
func (s *Store) flushDrops(now time.Time, force bool) {
	d := &s.dropLog
	if d.n == 0 || !force && now.Sub(d.at) < dropQuiet && now.Sub(d.start) < dropReport {
		return
	}
	s.log.Warn("dropped the oldest messages to make room (when-full = drop-oldest)",
		"route", d.route, "dropped", d.n, "first_seq", d.first, "last_seq", d.last, "reason", d.why,
		"during", now.Sub(d.start).Round(time.Millisecond), "dropped_total", s.since.dropped)
	*d = dropBurst{}
}
