package store

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Defaults for Options.
const (
	DefaultMaxBatch       = 4096
	DefaultLockTimeout    = time.Second
	DefaultCompactMinSize = 8 << 20
)

// FullPolicy is what the store does when a budget (Options.MaxBytes,
// MaxMessages, MinFree) is reached.
type FullPolicy uint8

const (
	// Backpressure, the default, keeps every stored message: Full reports
	// true, so the edge grants devices no credit, and appends that still
	// arrive fail with ErrFull.
	Backpressure FullPolicy = iota
	// DropOldest deletes the oldest queued messages to make room for new
	// ones. Drops are counted in Stats.DroppedOldest and logged, one line
	// per burst. Full reports true only when nothing is left to drop.
	DropOldest
)

// String returns the policy's configuration name.
func (p FullPolicy) String() string {
	switch p {
	case Backpressure:
		return "backpressure"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("FullPolicy(%d)", uint8(p))
}

// ParseFullPolicy parses "backpressure" or "drop-oldest".
func ParseFullPolicy(s string) (FullPolicy, error) {
	switch s {
	case "backpressure":
		return Backpressure, nil
	case "drop-oldest":
		return DropOldest, nil
	}
	return 0, fmt.Errorf("unknown full policy %q, want backpressure or drop-oldest", s)
}

// Options configure a Store. The zero value is usable.
type Options struct {
	// MaxBatch is the maximum number of messages (appends, deleted seqs,
	// dead letters) per commit; default DefaultMaxBatch.
	MaxBatch int
	// MaxDelay is how long the committer may wait to collect more work before
	// committing. The default 0 commits as soon as the previous commit
	// finished, which groups naturally: everything that queued during one
	// fsync goes into the next commit.
	MaxDelay time.Duration
	// NoSync skips fsync. For tests and benchmarks only: a crash loses
	// acknowledged messages.
	NoSync bool
	// Logger receives the store's few log lines; nil discards them.
	Logger *slog.Logger

	// LockTimeout is how long Open waits for another process to release the
	// file lock before failing with ErrLocked; default DefaultLockTimeout.
	LockTimeout time.Duration
	// MaxFileSize caps the size of the file in bytes; a commit that would
	// grow it further fails with ErrFull. 0 means Default32BitMaxFileSize
	// on 32-bit platforms and no cap on 64-bit ones; negative means no cap.
	MaxFileSize int

	// MaxBytes is the budget of queued payload bytes; 0 means none.
	MaxBytes uint64
	// MaxMessages is the budget of queued messages; 0 means none.
	MaxMessages uint64
	// MinFree is how many bytes of the file system holding the store must
	// stay free whatever the budgets say; 0 disables the guard. The store
	// asks the file system (statfs) at most every 100 ms, from the
	// committer.
	MinFree uint64
	// WhenFull is what happens when a budget or MinFree is reached.
	WhenFull FullPolicy
	// DefaultTTL is the time to live of messages that carry neither a
	// header ttl nor a properties absolute-expiry-time; 0 means they never
	// expire. Expired messages are never returned by Read and are deleted by
	// the committer.
	DefaultTTL time.Duration
	// CompactMinSize is the file size above which the store compacts the
	// file once the queue has drained (see the package documentation);
	// default DefaultCompactMinSize, negative disables compaction.
	CompactMinSize int64
	// Recover makes Open verify the file and, if it cannot be opened or is
	// damaged, move it aside, salvage what it can into a fresh file and
	// report it in Stats.Recovered instead of failing (see the package
	// documentation). Without it Open returns the error.
	Recover bool
	// Clock tells the time for expiry; nil means the system clock.
	Clock Clock

	// Routes are the store's queues (see Route). A route named DefaultRoute,
	// if not among them, is added with WhenFull and DefaultTTL from these
	// Options and priority 0. The budgets above (MaxBytes, MaxMessages,
	// MinFree) are totals over all routes; WhenFull and DefaultTTL apply to
	// the default route only when it is added that way.
	Routes []Route

	// Commands configure the device-bound queues (see command.go).
	Commands CommandOptions
}

// Clock is a source of the current time: the one method of the gateway's clock
// (package hw/backoff's Clock) the store needs.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Default32BitMaxFileSize is the default Options.MaxFileSize on 32-bit
// platforms such as Raspberry Pi OS armhf. bbolt maps the whole file into one
// contiguous range of address space and cannot map more than 2 GB there; a
// 1 GB cap turns running out of address space into a clean ErrFull.
const Default32BitMaxFileSize = 1 << 30

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxDelay < 0 {
		o.MaxDelay = 0
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	switch {
	case o.MaxFileSize == 0 && strconv.IntSize == 32:
		o.MaxFileSize = Default32BitMaxFileSize
	case o.MaxFileSize < 0:
		o.MaxFileSize = 0 // bbolt: no cap
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CompactMinSize == 0 {
		o.CompactMinSize = DefaultCompactMinSize
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	return o
}
