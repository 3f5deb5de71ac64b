package store

import "time"

// Stats is a snapshot of the store's counters.
type Stats struct {
	Messages        uint64 // messages queued (appended, not yet deleted or dead-lettered)
	Bytes           uint64 // payload bytes of the queued messages
	DeadLetters     uint64 // messages in the dead-letter area
	DeadLetterBytes uint64 // payload bytes of the dead letters
	Commits         uint64 // successful commits since Open
	CommitErrors    uint64 // failed commits since Open
	Appended        uint64 // messages appended since Open
	LastSeq         uint64 // highest seq assigned so far (committed or not)

	DroppedOldest uint64 // messages deleted since Open to make room (WhenFull DropOldest)
	Rejected      uint64 // appends refused with ErrFull since Open because a budget was reached
	Expired       uint64 // expired messages deleted since Open
	// DroppedTotal and ExpiredTotal count the same over the life of the
	// file: they are persisted, so a reboot does not hide that messages
	// were dropped.
	DroppedTotal uint64
	ExpiredTotal uint64
	Compactions  uint64 // file compactions since Open
	// LastCompaction describes the latest compaction since Open, if any.
	LastCompaction *Compaction
	// FullReason says why Full is true ("max-bytes", "max-messages",
	// "min-free", "disk", or a route's budget: "route max-bytes", "route
	// max-messages"), empty when it is false; RouteStats.FullReason says it
	// per route.
	FullReason string
	// FreeBytes is the free space of the file system as of the last
	// statfs, 0 if MinFree is not set.
	FreeBytes uint64
	// Recovered is set when Open found the file damaged and started a fresh
	// one (Options.Recover); nil otherwise.
	Recovered *Recovered
	// Routes are the routes' counters, highest priority first.
	Routes []RouteStats
	// AckLatency is how long appends waited for their commit lately.
	AckLatency Latency
}

// Stats returns a consistent snapshot of the counters. It is cheap: the
// committer publishes a new snapshot after every commit.
func (s *Store) Stats() Stats { return *s.stats.Load() }

// Path returns the file name of the store.
func (s *Store) Path() string { return s.path }

// Full reports whether no route has room (FullFor is true for every address):
// the last commit failed with ErrFull (the disk or the file size cap), or
// budgets (Options.MaxBytes, MaxMessages, the routes' own) are used up where
// nothing may be dropped, or the file system has less than Options.MinFree
// free. Stats.FullReason says which. It turns false once a commit (for example
// one that deletes forwarded messages) or the committer's periodic check finds
// room again. Producers that can wait should stop sending while it is true;
// FullFor tells it per address. It is cheap and safe for concurrent use.
func (s *Store) Full() bool { return s.full.Load() }

// FullFor reports whether messages sent to address cannot be stored now: the
// store is full as a whole and nothing can be dropped for them, or their
// route's budget is used up and the route applies backpressure. It is what the
// edge asks before granting link credit. It is cheap and safe for concurrent use.
func (s *Store) FullFor(address string) bool {
	return (*s.routeFull.Load())[s.rt.lookup(address).idx] != ""
}

// RouteStats is a snapshot of one route.
type RouteStats struct {
	Name        string
	Priority    int
	WhenFull    FullPolicy
	MaxBytes    uint64 // the route's own budget, 0: none
	MaxMessages uint64
	Messages    uint64 // queued now
	Bytes       uint64 // payload bytes queued now
	Dropped     uint64 // dropped since Open to make room
	// FullReason says why FullFor is true for the route's addresses, "" if it
	// is not: "max-bytes" or "max-messages" (the route's own budget), "store
	// max-bytes", "store max-messages", "min-free" or "disk".
	FullReason string
	// Orphan is set for a route found in the file that is not configured: Open
	// moved its messages to the configured routes (those it could not read stay
	// and are forwarded at priority 0); nothing new is put on it, and the next
	// Open removes it once empty.
	Orphan bool
}

// publish makes the committer's current counters visible to Stats.
func (s *Store) publish() {
	s.stats.Store(&Stats{
		Messages:        s.persisted.messages,
		Bytes:           s.persisted.bytes,
		DeadLetters:     s.persisted.deadLetters,
		DeadLetterBytes: s.persisted.deadBytes,
		Commits:         s.since.commits,
		CommitErrors:    s.since.commitErrors,
		Appended:        s.since.appended,
		LastSeq:         s.lastSeq,
		DroppedOldest:   s.since.dropped,
		Rejected:        s.since.rejected,
		Expired:         s.since.expired,
		DroppedTotal:    s.totals.dropped,
		AckLatency:      s.ackLat.snapshot(time.Now()),
		ExpiredTotal:    s.totals.expired,
		Compactions:     s.since.compactions,
		LastCompaction:  s.lastComp,
		FullReason:      s.fullReason(),
		FreeBytes:       s.free,
		Recovered:       s.recovered,
		Routes:          s.routeStats(),
	})
}

// routeStats returns the routes' counters for publish.
func (s *Store) routeStats() []RouteStats {
	out := make([]RouteStats, len(s.rt.all))
	for i, r := range s.rt.all {
		out[i] = RouteStats{
			Name: r.Name, Priority: r.Priority, WhenFull: r.WhenFull,
			MaxBytes: r.MaxBytes, MaxMessages: r.MaxMessages,
			Messages: r.count.messages, Bytes: r.count.bytes, Dropped: r.dropped,
			FullReason: r.fullWhy, Orphan: r.orphan,
		}
	}
	return out
}
