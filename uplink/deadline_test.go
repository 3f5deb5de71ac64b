package uplink

import (
	"context"
	"testing"
	"time"
)

func TestDeadline(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newDeadline(parent, 20*time.Millisecond)
	defer g.close()

	// A wait that ends in time leaves the context usable.
	ctx := g.start()
	if g.stop() || ctx.Err() != nil {
		t.Fatalf("a wait that ended in time: passed, or context %v", ctx.Err())
	}
	// A wait that outlasts d is cancelled and reported.
	ctx = g.start()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context was not cancelled after its deadline")
	}
	if !g.stop() {
		t.Error("stop after the deadline: not passed")
	}
	// The next wait has a fresh context.
	if ctx = g.start(); ctx.Err() != nil {
		t.Errorf("the wait after a passed one starts cancelled: %v", ctx.Err())
	}
	g.stop()
	// The parent's end is not the deadline's.
	ctx = g.start()
	cancel()
	<-ctx.Done()
	if g.stop() {
		t.Error("stop after the parent ended: passed")
	}
}
