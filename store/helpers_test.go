package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if a committer goroutine outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && os.Getenv(crashEnv) == "" {
		if err := waitNoCommitters(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// committerGoroutines counts goroutines running the committer loop.
func committerGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("store.(*Store).run(")) {
			n++
		}
	}
	return n, string(buf)
}

func waitNoCommitters(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, stacks := committerGoroutines()
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d committer goroutines leaked:\n%s", n, stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkFor polls cond until it is true or timeout passes.
func checkFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testOptions are fast options for tests that do not measure durability.
func testOptions() Options { return Options{NoSync: true} }

// openTest opens a store in a fresh directory. At cleanup it closes the store
// (again, if the test did), reopens the file and runs Check on it, so that
// every test ends with a consistency check of what is on disk.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "store.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, path)
	})
	return s, path
}

// checkFile reopens path and runs Check.
func checkFile(t testing.TB, path string) {
	t.Helper()
	s, err := Open(path, testOptions())
	if err != nil {
		t.Errorf("reopen for check: %v", err)
		return
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Errorf("Check after reopen: %v", err)
	}
}

// reopen closes s and opens its file again with opts.
func reopen(t testing.TB, s *Store, path string, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := Open(path, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// readAll returns every queued message.
func readAll(t testing.TB, s *Store) []Message {
	t.Helper()
	var all []Message
	var after uint64
	for {
		msgs, err := s.Read(after, 1000)
		if err != nil {
			t.Fatalf("Read(%d): %v", after, err)
		}
		if len(msgs) == 0 {
			return all
		}
		all = append(all, msgs...)
		after = msgs[len(msgs)-1].Seq
	}
}

// seqs returns the seqs of msgs.
func seqs(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

// mustCheck fails the test if s.Check reports a problem.
func mustCheck(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
