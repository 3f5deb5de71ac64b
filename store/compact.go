package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	// housekeepEvery is how often an idle committer purges expired
	// messages, re-reads the free space, logs drop bursts and considers
	// compacting.
	housekeepEvery = time.Second
	// compactSuffix names the copy a compaction writes before renaming it
	// over the store.
	compactSuffix = ".compact"
	// compactMaxLive bounds the live data a compaction copies, and so the
	// pause of writes: the store compacts once the backlog has (nearly)
	// drained, not while it is large.
	compactMaxLive = 4 << 20
	// compactRatio: compact when the file is this many times larger than
	// the live data.
	compactRatio = 4
	// recordOverhead estimates the bytes per record beyond its payload
	// (header, key, bbolt element, page slack).
	recordOverhead = 64
	// compactBackoff is how long the store waits before trying again after
	// a compaction that failed or did not shrink the file.
	compactBackoff = 10 * time.Minute
)

// compactState is the committer's memory of compactions.
type compactState struct {
	notBefore time.Time
}

// housekeep runs on the committer goroutine when it was idle for
// housekeepEvery.
func (s *Store) housekeep() {
	now := time.Now()
	s.flushDrops(now, false)
	s.refreshFree(false)
	if now := s.opts.Clock.Now().UnixNano(); (s.nextExp != 0 && s.nextExp <= now) || (s.cmd.nextExp != 0 && s.cmd.nextExp <= now) {
		// A commit without requests of its own runs purgeExpired.
		s.commit([]*request{{kind: opHousekeep, done: func(uint64, error) {}}})
	}
	if err := s.maybeCompact(now); err != nil {
		s.log.Error("compaction failed; the store goes on with the old file", "err", err)
	}
	s.updateFull()
	s.publish()
}

// liveEstimate estimates the bytes a compacted file would need.
func (s *Store) liveEstimate() int64 {
	c := s.persisted
	return int64(c.bytes+c.deadBytes) + int64(c.messages+c.deadLetters)*recordOverhead + 64<<10
}

// maybeCompact compacts the file if it is above Options.CompactMinSize,
// more than compactRatio times the live data, and the live data is small.
func (s *Store) maybeCompact(now time.Time) error {
	if s.opts.CompactMinSize < 0 || now.Before(s.compact.notBefore) {
		return nil
	}
	live := s.liveEstimate()
	if live > compactMaxLive {
		return nil
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return err
	}
	if fi.Size() < s.opts.CompactMinSize || fi.Size() < compactRatio*live {
		return nil
	}
	if _, err := s.compactFile(); err != nil {
		s.compact.notBefore = now.Add(compactBackoff)
		return err
	}
	if s.lastComp != nil && s.lastComp.After > s.lastComp.Before/2 {
		s.compact.notBefore = now.Add(compactBackoff)
	}
	return nil
}

// Compact rewrites the file now, whatever its size, and returns what it did;
// see the package documentation. Writes wait for it.
func (s *Store) Compact() (Compaction, error) {
	if _, err := s.do(context.Background(), &request{kind: opCompact}); err != nil {
		return Compaction{}, err
	}
	if c := s.Stats().LastCompaction; c != nil {
		return *c, nil
	}
	return Compaction{}, nil
}

// compactFile copies the live data into a new file, fsyncs it, renames it
// over the store and reopens it. It runs on the committer goroutine, so
// writes wait for it (the pause); reads wait only while the files are
// swapped. A crash at any point leaves either the old file or the complete
// new one, plus perhaps a stale copy that Open removes.
func (s *Store) compactFile() (*Compaction, error) {
	start := time.Now()
	before, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("store: compact: %w", err)
	}
	tmp := s.path + compactSuffix
	_ = os.Remove(tmp)
	opts := *s.boltOptions()
	opts.NoSync = s.opts.NoSync
	dst, err := bolt.Open(tmp, 0o600, &opts)
	if err != nil {
		return nil, fmt.Errorf("store: compact: %w", err)
	}
	if err := bolt.Compact(dst, s.db, 16<<20); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("store: compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("store: compact: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("store: compact: %w", err)
	}

	// The new file is renamed over the old one while the old one is still
	// open (on Linux its mapping stays valid), then opened, then swapped in;
	// the old mapping is released after the swap, in the background: closing
	// a large mapping takes long (170 ms for 300 MiB, more on a Pi) and writes
	// need not wait for it. Windows cannot rename over an open file.
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	old := s.db
	if runtime.GOOS == "windows" {
		if err := old.Close(); err != nil {
			return nil, fmt.Errorf("store: compact: close: %w", err)
		}
	}
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		renameErr = syncDir(filepath.Dir(s.path))
	}
	if renameErr != nil && runtime.GOOS != "windows" {
		// The old file is still in place and open: go on with it.
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("store: compact: %w", renameErr)
	}
	db, err := bolt.Open(s.path, 0o600, s.boltOptions())
	if err != nil {
		// Without a file the store cannot go on; the committer fails every
		// request until the process restarts. The old file, if still open,
		// is no longer at s.path: writing on would lose data.
		_ = old.Close()
		return nil, fmt.Errorf("store: compact: reopen: %w", errors.Join(renameErr, err))
	}
	s.db = db
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		if err := old.Close(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			s.log.Warn("closing the file replaced by compaction", "err", err)
		}
	}()
	if renameErr != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("store: compact: %w", renameErr)
	}
	after, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("store: compact: %w", err)
	}
	comp := &Compaction{At: start, Before: before.Size(), After: after.Size(), Pause: time.Since(start)}
	s.lastComp = comp
	s.since.compactions++
	s.log.Info("store file compacted", "before", comp.Before, "after", comp.After, "pause", comp.Pause.Round(time.Microsecond))
	return comp, nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// Compaction describes one rewrite of the file into a smaller one.
type Compaction struct {
	At     time.Time
	Before int64         // file size before, bytes
	After  int64         // file size after, bytes
	Pause  time.Duration // how long writes waited
}
