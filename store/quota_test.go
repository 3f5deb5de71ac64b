package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects log output safely across goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func appendN(t *testing.T, s *Store, n, size int) []error {
	t.Helper()
	var errs []error
	for range n {
		errs = append(errs, s.Append(context.Background(), &Message{Address: "a", Payload: bytes.Repeat([]byte{'x'}, size)}))
	}
	return errs
}

func TestBudgetsBackpressure(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		size    int
		wantOK  int
		wantWhy string
	}{
		{"max-messages", Options{MaxMessages: 3}, 10, 3, "max-messages"},
		{"max-bytes", Options{MaxBytes: 35}, 10, 3, "max-bytes"},
		{"min-free", Options{MinFree: 1 << 62}, 10, 0, "min-free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.NoSync = true
			s, _ := openTest(t, opts)
			errs := appendN(t, s, 5, tt.size)
			for i, err := range errs {
				if wantErr := i >= tt.wantOK; wantErr != errors.Is(err, ErrFull) || (!wantErr && err != nil) {
					t.Errorf("append %d: got %v, want ErrFull %v", i, err, wantErr)
				}
			}
			st := s.Stats()
			if !s.Full() || st.FullReason != tt.wantWhy || st.Messages != uint64(tt.wantOK) {
				t.Errorf("got Full %v reason %q messages %d, want true %q %d", s.Full(), st.FullReason, st.Messages, tt.wantWhy, tt.wantOK)
			}
			if st.Rejected != uint64(5-tt.wantOK) {
				t.Errorf("got Rejected %d, want %d", st.Rejected, 5-tt.wantOK)
			}
			if tt.wantOK > 0 {
				if err := s.Delete(1); err != nil {
					t.Fatal(err)
				}
				if s.Full() {
					t.Errorf("after a delete: got Full, want room")
				}
			}
			mustCheck(t, s)
		})
	}
}

func TestDropOldest(t *testing.T) {
	var logs lockedBuffer
	opts := Options{NoSync: true, MaxMessages: 3, MaxBytes: 1000, WhenFull: DropOldest,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s, path := openTest(t, opts)
	for i, err := range appendN(t, s, 5, 10) {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if got := seqs(readAll(t, s)); !slicesEqual(got, []uint64{3, 4, 5}) {
		t.Errorf("got seqs %v, want [3 4 5]", got)
	}
	if st := s.Stats(); st.DroppedOldest != 2 || s.Full() {
		t.Errorf("got DroppedOldest %d, Full %v; want 2, false", st.DroppedOldest, s.Full())
	}
	// A message larger than the whole budget is refused, not made room for.
	if err := s.Append(context.Background(), &Message{Payload: make([]byte, 1001)}); !errors.Is(err, ErrFull) {
		t.Errorf("oversized append: got %v, want ErrFull", err)
	}
	// One log line for the burst, once it is over.
	checkFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "dropped the oldest") },
		"the drop burst is logged")
	if n := strings.Count(logs.String(), "dropped the oldest"); n != 1 || !strings.Contains(logs.String(), "dropped=2") {
		t.Errorf("got %d drop lines, want 1 with dropped=2:\n%s", n, logs.String())
	}
	mustCheck(t, s)
	// The total survives a reopen; the since-open counter starts again.
	s = reopen(t, s, path, opts)
	appendN(t, s, 1, 10)
	if st := s.Stats(); st.DroppedOldest != 1 || st.DroppedTotal != 3 {
		t.Errorf("after reopen got DroppedOldest %d, DroppedTotal %d; want 1, 3", st.DroppedOldest, st.DroppedTotal)
	}
}

func TestDropOldestMinFree(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true, MinFree: 1 << 62, WhenFull: DropOldest})
	// Nothing to drop: refused, and Full.
	if err := s.Append(context.Background(), &Message{Payload: []byte("x")}); !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
	if !s.Full() || s.Stats().FullReason != "min-free" {
		t.Errorf("got Full %v %q, want true min-free", s.Full(), s.Stats().FullReason)
	}
}

func TestParseFullPolicy(t *testing.T) {
	for _, p := range []FullPolicy{Backpressure, DropOldest} {
		if got, err := ParseFullPolicy(p.String()); err != nil || got != p {
			t.Errorf("ParseFullPolicy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if _, err := ParseFullPolicy("drop-newest"); err == nil {
		t.Error("ParseFullPolicy(drop-newest): got no error")
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newTextLogger(w *lockedBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// Drops just before Close are logged at Close, not lost with the burst.
func TestDropOldestLoggedAtClose(t *testing.T) {
	var logs lockedBuffer
	opts := Options{NoSync: true, MaxMessages: 2, WhenFull: DropOldest, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s, _ := openTest(t, opts)
	appendN(t, s, 5, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "dropped the oldest"); n != 1 || !strings.Contains(logs.String(), "dropped=3") {
		t.Fatalf("got %d drop lines at Close, want 1 with dropped=3:\n%s", n, logs.String())
	}
}
