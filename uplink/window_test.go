package uplink

import (
	"sync"
	"testing"
	"time"
)

func TestWindowCost(t *testing.T) {
	w := newWindow(8)
	for _, tt := range []struct{ payload, want int }{
		{0, 1}, {100, 1}, {tokenBytes - 1, 1}, {tokenBytes, 2}, {3*tokenBytes + 5, 4},
		{100 * tokenBytes, 8}, // larger than the window: sent alone
	} {
		if got := w.cost(tt.payload); got != tt.want {
			t.Errorf("cost(%d) = %d, want %d", tt.payload, got, tt.want)
		}
	}
}

// TestWindowTake: a taker that gives up holds nothing; takers of several tokens at
// once, competing with takers of one, all get theirs as tokens come back.
func TestWindowTake(t *testing.T) {
	w := newWindow(4)
	if !w.take(3, nil) {
		t.Fatal("take(3) of an empty window failed")
	}
	done := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { close(done) })
	if w.take(2, done) {
		t.Fatal("take(2) with 1 token free succeeded")
	}
	if n := len(w.tokens); n != 3 {
		t.Fatalf("after a take that gave up: %d tokens held, want 3", n)
	}
	w.give(3)

	// Each taker holds its tokens for a moment, then gives them back; 4 takers of 3
	// tokens and 4 of 1 share a window of 4. With two takers of several tokens each
	// holding part of what they need, this would never end.
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, most := 0, 0
	for i := range 8 {
		n := 1 + 2*(i%2)
		wg.Go(func() {
			for range 50 {
				if !w.take(n, nil) {
					t.Error("take without done failed")
					return
				}
				mu.Lock()
				held += n
				most = max(most, held)
				mu.Unlock()
				time.Sleep(50 * time.Microsecond)
				mu.Lock()
				held -= n
				mu.Unlock()
				w.give(n)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("takers still waiting after 30s: %d tokens held", len(w.tokens))
	}
	if most > 4 {
		t.Errorf("up to %d tokens held at once, want at most the window, 4", most)
	}
	if n := len(w.tokens); n != 0 {
		t.Errorf("%d tokens held at the end, want 0", n)
	}
}
