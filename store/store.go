package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and key names; see the package documentation for the layout.
var (
	bucketMeta   = []byte("meta")
	bucketQueue  = []byte("q")
	bucketDead   = []byte("dead")
	bucketExpiry = []byte("expiry")
	keySchema    = []byte("schema")
	keyStats     = []byte("stats")
	keyTotals    = []byte("totals")
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

// Message is one stored message: an envelope (address, source, times) around a
// payload the store keeps as opaque bytes. The store knows nothing of the payload's
// encoding; the producers (the edge, the sensor inputs) and the uplink do.
type Message struct {
	Seq      uint64    // assigned by the store on Append, strictly increasing, never reused
	Address  string    // target address the device sent to
	Source   string    // who sent it (SASL user or container-id)
	Received time.Time // when the gateway received it; Append sets time.Now() if zero
	Payload  []byte    // the message's bytes (for AMQP: its sections exactly as received)
	Route    string    // the route the message is queued on; set by Read and ReadNext

	// Expires is when the message expires, as its producer worked it out from the
	// message (for AMQP, package message's ExpiresAt); the zero time means the message
	// sets none, and the route's DefaultTTL, counted from Received, applies. Append
	// keeps it; Read and ReadNext leave it zero.
	Expires time.Time
}

// DeadLetter is a message the cloud refused, kept with the reason.
type DeadLetter struct {
	Message
	Reason string    // why it was dead-lettered, e.g. the cloud's rejected error
	At     time.Time // when it was dead-lettered
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

// Compaction describes one rewrite of the file into a smaller one.
type Compaction struct {
	At     time.Time
	Before int64         // file size before, bytes
	After  int64         // file size after, bytes
	Pause  time.Duration // how long writes waited
}

// Store is a durable FIFO of messages in one bbolt file. All methods are safe
// for concurrent use. Writes are serialised through one committer goroutine
// that Open starts and Close stops; whoever opens a Store must Close it.
type Store struct {
	// dbMu guards db, which compaction replaces: readers hold it for
	// reading, the committer takes it for writing to swap the file.
	dbMu sync.RWMutex
	db   *bolt.DB
	path string
	opts Options
	log  *slog.Logger

	// mu guards closed and the sending side of reqs: senders hold it for
	// reading, Close holds it for writing to close reqs exactly once after
	// the last send.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request

	exited    chan struct{}  // closed when the committer returned
	closing   sync.WaitGroup // files replaced by compaction being closed
	closeOnce sync.Once
	closeErr  error

	appended  signal // fired after a commit that appended messages
	room      signal // fired when Full or FullFor turned false for some address
	notify    *Watch // the uplink's watch of appended (Notify)
	stats     atomic.Pointer[Stats]
	rt        *routeTable              // read-only after Open
	routeFull atomic.Pointer[[]string] // FullReason by route index
	full      atomic.Bool              // the last commit failed for lack of room

	// Owned by the committer goroutine after Open returns.
	persisted counters // what meta/stats holds as of the last commit
	totals    totals   // what meta/totals holds as of the last commit
	lastSeq   uint64   // last seq handed out
	arena     []byte   // keys and values of the transaction being built
	since     sinceOpen
	failing   bool // the last commit failed (for logging transitions only)
	pend      pending
	nextExp   int64      // earliest expiry in the index, Unix nanoseconds; 0: none
	free      uint64     // free bytes of the file system, last statfs
	freeAt    time.Time  // when free was measured
	diskFull  bool       // the last commit failed with ErrFull
	fullWhy   string     // why Full is true, "" if it is not
	txn       txn        // the transaction being built
	ackLat    ackLatency // how long appends waited for their commit
	dropLog   dropBurst
	compact   compactState
	recovered *Recovered
	lastComp  *Compaction
}

// Open opens the store at path, creating the file (mode 0600) and its parent
// directory (mode 0700) if needed, and starts the committer goroutine. It reads
// the whole file once to rebuild bbolt's freelist (see the package
// documentation), so it costs a sequential read of the file. If another
// process holds the file, Open fails after opts.LockTimeout with ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	// A compaction that a crash interrupted leaves its unfinished copy.
	_ = os.Remove(path + compactSuffix)
	rt, err := newRouteTable(opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{
		rt:     rt,
		path:   path,
		opts:   opts,
		log:    opts.Logger.With("component", "store"),
		reqs:   make(chan *request, opts.MaxBatch),
		exited: make(chan struct{}),
	}
	s.notify = s.appended.watch()
	err = s.openFile(opts.Recover)
	if err != nil && opts.Recover && recoverable(err) {
		err = s.recoverFile(err)
	}
	if err == nil {
		if err = s.reroute(); err != nil {
			_ = s.db.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.refreshFree(true)
	s.updateFull()
	s.publish()
	s.log.Info("store opened", "path", path, "messages", s.persisted.messages,
		"dead_letters", s.persisted.deadLetters, "last_seq", s.lastSeq)
	go s.run()
	return s, nil
}

// boltOptions returns the bbolt options for the store's file.
func (s *Store) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:        s.opts.LockTimeout,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
		NoSync:         s.opts.NoSync,
		MaxSize:        s.opts.MaxFileSize,
	}
}

// openFile opens s.path into s.db and loads the counters; with verify it
// first checks the file's structure (see verify).
func (s *Store) openFile(verify bool) error {
	if verify {
		if err := verifyFile(s.path); err != nil {
			if errors.Is(err, berrors.ErrTimeout) {
				return ErrLocked
			}
			return err
		}
	}
	var db *bolt.DB
	err := guard("open", func() (err error) {
		db, err = bolt.Open(s.path, 0o600, s.boltOptions())
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return ErrLocked
	}
	if err != nil {
		return err
	}
	if err := db.Update(s.initialize); err != nil {
		_ = db.Close()
		return err
	}
	s.db = db
	return s.loadNextExpiry()
}

// initialize creates the buckets of a new file and of every configured
// route, checks the layout version of an existing one, adds the routes found
// in the file but not configured (orphans) to the route table and loads the
// counters. It runs in Open only, before anyone reads the route table.
func (s *Store) initialize(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	// Version 1 files are upgraded in place: their records stay readable.
	// Older binaries refuse newer files instead of misreading them.
	schema := byte(schemaV2)
	switch v := meta.Get(keySchema); {
	case v == nil, len(v) == 1 && (v[0] == schemaV1 || v[0] == schemaV2):
	case len(v) == 1 && v[0] == schemaV3:
		schema = schemaV3
	default:
		return fmt.Errorf("layout version %d: %w", firstByte(v), ErrSchema)
	}
	q, err := tx.CreateBucketIfNotExists(bucketQueue)
	if err != nil {
		return err
	}
	for _, r := range s.rt.all {
		if _, err := q.CreateBucketIfNotExists(r.key); err != nil {
			return err
		}
	}
	if _, err := tx.CreateBucketIfNotExists(bucketDead); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketExpiry); err != nil {
		return err
	}

	// Routes in the file that are not configured: an empty one is removed,
	// one with messages is kept and drained (nothing is dropped because the
	// configuration changed).
	var orphans [][]byte
	err = q.ForEachBucket(func(k []byte) error {
		if s.rt.byName[string(k)] == nil {
			orphans = append(orphans, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range orphans {
		if k, _ := q.Bucket(name).Cursor().First(); k == nil {
			if err := q.DeleteBucket(name); err != nil {
				return err
			}
			if err := meta.Delete(routeStatsKey(string(name))); err != nil {
				return err
			}
			s.log.Info("removed an empty route that is no longer configured", "route", string(name))
			continue
		}
		s.rt.add(&route{Route: Route{Name: string(name), WhenFull: Backpressure}, orphan: true})
		s.log.Info("the store holds messages on a route that is no longer configured: they move to the configured routes",
			"route", string(name))
	}
	// A file with routes besides the default one is version 3: a binary
	// that knows only the default route would not forward the others.
	if len(s.rt.all) > 1 && schema < schemaV3 {
		schema = schemaV3
	}
	if v := meta.Get(keySchema); len(v) != 1 || v[0] != schema {
		if err := meta.Put(keySchema, []byte{schema}); err != nil {
			return err
		}
	}

	// The sequence counter only moves forward; guard against a file whose
	// counter is behind its keys all the same.
	s.lastSeq = q.Sequence()
	buckets := []*bolt.Bucket{tx.Bucket(bucketDead)}
	for _, r := range s.rt.all {
		buckets = append(buckets, q.Bucket(r.key))
	}
	for _, b := range buckets {
		if k, _ := b.Cursor().Last(); k != nil {
			if seq, err := keySeq(k); err == nil && seq > s.lastSeq {
				s.lastSeq = seq
			}
		}
	}

	s.totals = decodeTotals(meta.Get(keyTotals))

	// The counters: the totals and one record per route, which must add up.
	if s.loadCounters(meta) {
		return nil
	}
	c, perRoute, err := count(tx)
	if err != nil {
		return err
	}
	s.persisted = c
	for _, r := range s.rt.all {
		r.count = perRoute[r.Name]
	}
	return putCounters(meta, c, perRoute)
}

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
	var sum routeCount
	for _, r := range s.rt.all {
		rc, ok := decodeRouteCount(meta.Get(routeStatsKey(r.Name)))
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
func putCounters(meta *bolt.Bucket, c counters, perRoute map[string]routeCount) error {
	if err := meta.Put(keyStats, c.encode()); err != nil {
		return err
	}
	for name, rc := range perRoute {
		if err := meta.Put(routeStatsKey(name), rc.encode()); err != nil {
			return err
		}
	}
	return nil
}

// count computes the counters, the totals and per route, by scanning all
// records.
func count(tx *bolt.Tx) (counters, map[string]routeCount, error) {
	var c counters
	perRoute := map[string]routeCount{}
	q := tx.Bucket(bucketQueue)
	err := q.ForEachBucket(func(name []byte) error {
		var rc routeCount
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

// Close stops accepting requests, lets the committer commit everything that
// was queued before, waits for it to exit and closes the file. It is
// idempotent; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.reqs)
		s.mu.Unlock()
		<-s.exited
		s.closing.Wait()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// AppendAsync queues m for the next group commit and calls done exactly once.
// Normally done runs on the committer goroutine after the transaction holding
// m was committed and fsynced (err == nil, m.Seq set before the call) or with
// the commit's error (m.Seq unchanged). If the store is closed or m is too
// large, done is called with the error before AppendAsync returns.
//
// done must not block and must not call the Store's blocking methods (Append,
// Delete, DeadLetter, Check, Close): it runs on the goroutine they wait for.
// AppendAsync itself blocks while the request queue (Options.MaxBatch
// entries) is full. The store takes ownership of m.Payload; m itself must not
// be modified until done was called. A nil done is allowed.
func (s *Store) AppendAsync(m *Message, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	r, err := s.newAppend(m)
	if err == nil {
		r.done = func(seq uint64, err error) {
			if err == nil {
				m.Seq = seq
			}
			done(err)
		}
		err = s.enqueue(context.Background(), r)
	}
	if err != nil {
		done(fmt.Errorf("store: append: %w", err))
	}
}

// Append stores m durably and sets m.Seq; it returns after the commit holding
// m was fsynced. If ctx ends first, Append returns the context's error, m is
// left unchanged, and the message may still be stored.
func (s *Store) Append(ctx context.Context, m *Message) error {
	r, err := s.newAppend(m)
	if err != nil {
		return fmt.Errorf("store: append: %w", err)
	}
	seq, err := s.do(ctx, r)
	if err != nil {
		return err
	}
	m.Seq = seq
	return nil
}

func (s *Store) newAppend(m *Message) (*request, error) {
	if recordSize(m.Address, m.Source, len(m.Payload)) > bolt.MaxValueSize {
		return nil, fmt.Errorf("%d payload bytes: %w", len(m.Payload), ErrTooLarge)
	}
	received := m.Received
	if received.IsZero() {
		received = time.Now()
	}
	r := s.rt.lookup(m.Address)
	return &request{
		kind:     opAppend,
		route:    r,
		address:  m.Address,
		source:   m.Source,
		received: unixNanos(received),
		expires:  s.expiresAt(m, r, received),
		payload:  m.Payload,
	}, nil
}

// Delete removes the messages with the given seqs, typically after the cloud
// accepted them, and returns after the commit. Seqs that are not queued are
// ignored. Deleting is batched with concurrent appends.
func (s *Store) Delete(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.do(context.Background(), &request{kind: opDelete, seqs: seqs})
	return err
}

// DeadLetter moves the message seq to the dead-letter area with reason, in one
// transaction, and returns after the commit. It returns an error wrapping
// ErrNotFound if seq is not queued.
func (s *Store) DeadLetter(seq uint64, reason string) error {
	_, err := s.do(context.Background(), &request{kind: opDeadLetter, seqs: []uint64{seq}, reason: reason})
	return err
}

// Rewrite replaces the payload of the queued message seq, keeping its seq,
// route, address, source, received and expiry times, and returns after the
// commit. The uplink uses it to record durably what the cloud asked for with a
// modified outcome (AMQP 1.0 §3.4.5: a delivery-count incremented, annotations
// merged), so that it survives a restart. Budgets do not apply. It returns an
// error wrapping ErrNotFound if seq is not queued. The store takes ownership
// of payload.
func (s *Store) Rewrite(seq uint64, payload []byte) error {
	if recordSize("", "", len(payload)) > bolt.MaxValueSize {
		return fmt.Errorf("store: rewrite: %d payload bytes: %w", len(payload), ErrTooLarge)
	}
	_, err := s.do(context.Background(), &request{kind: opRewrite, seqs: []uint64{seq}, payload: payload})
	return err
}

// DeleteDeadLetters removes dead letters by seq and returns after the commit.
// Seqs that are not dead letters are ignored.
func (s *Store) DeleteDeadLetters(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	_, err := s.do(context.Background(), &request{kind: opDeleteDead, seqs: seqs})
	return err
}

// Check verifies the file: bbolt's page-level consistency check, that every
// record decodes, that keys are not above the sequence counter, and that the
// persisted counters match the records. It runs on the committer goroutine, so
// it delays all writes while it reads the whole file.
func (s *Store) Check() error {
	_, err := s.do(context.Background(), &request{kind: opCheck})
	return err
}

// do enqueues r and waits for its completion or for ctx to end.
func (s *Store) do(ctx context.Context, r *request) (uint64, error) {
	type result struct {
		seq uint64
		err error
	}
	ch := make(chan result, 1)
	r.done = func(seq uint64, err error) { ch <- result{seq, err} }
	if err := s.enqueue(ctx, r); err != nil {
		return 0, fmt.Errorf("store: %s: %w", r.kind, err)
	}
	select {
	case res := <-ch:
		return res.seq, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("store: %s: %w", r.kind, ctx.Err())
	}
}

// enqueue hands r to the committer, blocking while the queue is full.
func (s *Store) enqueue(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.kind == opAppend {
		r.queued = time.Now()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Read returns up to max queued messages with Seq > after, in Seq order across
// all routes. The messages are copies, owned by the caller. Read runs in a bbolt
// read transaction concurrently with commits; its cost is proportional to the
// bytes returned. A forwarder that should respect route priorities uses
// ReadNext instead.
func (s *Store) Read(after uint64, max int) ([]Message, error) {
	if max <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	var msgs []Message
	err := s.view(func(tx *bolt.Tx) (err error) {
		msgs, err = s.readMerged(tx.Bucket(bucketQueue), s.rt.all, func(*route) uint64 { return after }, func(*route, uint64) {}, max)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	return msgs, nil
}

// DeadLetters returns all dead letters in Seq order, as copies. Its cost is
// proportional to the size of the dead-letter area.
func (s *Store) DeadLetters() ([]DeadLetter, error) {
	var dls []DeadLetter
	err := s.view(func(tx *bolt.Tx) error {
		var str interner
		return tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			seq, err := keySeq(k)
			if err != nil {
				return err
			}
			h, err := decodeDeadRecord(seq, v)
			if err != nil {
				return err
			}
			dls = append(dls, DeadLetter{
				Message: h.msg.message(seq, &str),
				Reason:  string(h.reason),
				At:      time.Unix(0, h.at),
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: dead letters: %w", err)
	}
	return dls, nil
}

// view runs fn in a read transaction, mapping a closed database to ErrClosed.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// message copies a decoded record into a Message.
func (h messageHeader) message(seq uint64, str *interner) Message {
	return Message{
		Seq:      seq,
		Address:  str.get(h.address),
		Source:   str.get(h.source),
		Received: time.Unix(0, h.received),
		Payload:  bytes.Clone(h.payload),
	}
}

// interner reuses the previous strings when consecutive records repeat
// them, which is the common case for address and source.
type interner struct{ last [2]string }

func (in *interner) get(b []byte) string {
	for _, s := range in.last {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	in.last[1], in.last[0] = in.last[0], s
	return s
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
