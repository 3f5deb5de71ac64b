package hw

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/hw/serial"
	"github.com/shadowgw/shadowgw/store"
)

// fakeClock is a Clock whose After fires at once and moves the time on, recording
// every wait: a polled input's schedule and backoff run without real waiting.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// memStore is a Store in memory that calls onAppend after each append.
type memStore struct {
	mu       sync.Mutex
	msgs     []*store.Message
	err      error // returned by Append when set
	onAppend func(n int)
}

func (s *memStore) Append(ctx context.Context, m *store.Message) error {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	s.msgs = append(s.msgs, m)
	n := len(s.msgs)
	s.mu.Unlock()
	if s.onAppend != nil {
		s.onAppend(n)
	}
	return nil
}

func (s *memStore) messages() []*store.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*store.Message(nil), s.msgs...)
}

// checkFor polls cond every 10 ms until it holds or d passed.
func checkFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runInput runs in until the returned stop is called; stop waits for Run to return.
func runInput(t *testing.T, in *Input, st Store) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		in.Run(ctx, st)
		close(done)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func serialConfig(baud int) serial.Config {
	c := serial.DefaultConfig
	c.Baud = baud
	return c
}
