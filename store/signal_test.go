package store

import (
	"context"
	"testing"
)

// received reports whether c has a value waiting.
func received(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Every watcher of appends is woken by one append; a stopped one is not.
func TestWatchAppends(t *testing.T) {
	s, _ := openTest(t, testOptions())
	a, b, stopped := s.WatchAppends(), s.WatchAppends(), s.WatchAppends()
	defer a.Stop()
	defer b.Stop()
	stopped.Stop()
	stopped.Stop() // idempotent
	if err := s.Append(context.Background(), &Message{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if !received(a.C) || !received(b.C) {
		t.Fatal("a watcher got no signal after Append")
	}
	if received(stopped.C) {
		t.Fatal("a stopped watcher got a signal")
	}
	if !received(s.Notify()) {
		t.Fatal("Notify got no signal after Append")
	}
	if err := s.Delete(1); err != nil {
		t.Fatal(err)
	}
	if received(a.C) {
		t.Fatal("got a signal after a commit without appends")
	}
}

// WatchRoom fires when the store that was full has room again, not before.
func TestWatchRoom(t *testing.T) {
	s, _ := openTest(t, Options{NoSync: true, MaxMessages: 2})
	w := s.WatchRoom()
	defer w.Stop()
	appendN(t, s, 3, 10)
	if !s.Full() {
		t.Fatal("store with MaxMessages 2 and 2 messages is not full")
	}
	if received(w.C) {
		t.Fatal("got a room signal while the store filled up")
	}
	if err := s.Delete(1); err != nil {
		t.Fatal(err)
	}
	if s.Full() || !received(w.C) {
		t.Fatalf("after a delete: Full %v, want false and a room signal", s.Full())
	}
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	if received(w.C) {
		t.Fatal("got a room signal for a store that had room already")
	}
	mustCheck(t, s)
}
