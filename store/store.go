package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	totals    tally    // what meta/totals holds (dropped, expired) as of the last commit
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

	cmd      cmdState      // device-bound queues, owned by the committer (command_apply.go)
	cmdStats cmdStatsPtr   // published CommandStats
	cmdSig   deviceSignals // fired after commits that queued commands, per device
	cmdRoom  signal        // fired after commits that removed commands
}

// Open opens the store at path, creating the file (mode 0600) and its parent
// directory (mode 0700) if needed, and starts the committer goroutine. It reads
// the whole file once to rebuild bbolt's freelist (see the package
// documentation), so it costs a sequential read of the file. If another
// process holds the file, Open fails after opts.LockTimeout with ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	opts.Commands = opts.Commands.withDefaults()
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
		if err = s.reroute(); err == nil {
			err = s.loadCommands()
		}
		if err != nil {
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
