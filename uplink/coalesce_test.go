package uplink

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// recordingConn is the connection below a coalescingConn in tests: it keeps what was
// written and counts the writes; a write may be held up by gate, or fail with fail.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	got    bytes.Buffer
	writes int
	gate   chan struct{}
	fail   error
	closed bool
}

func (r *recordingConn) Write(p []byte) (int, error) {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes++
	return r.got.Write(p)
}

func (r *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func (r *recordingConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recordingConn) snapshot() (string, int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String(), r.writes, r.closed
}

// TestCoalescingIdle checks that a lone write goes out without waiting for more.
func TestCoalescingIdle(t *testing.T) {
	rc := &recordingConn{}
	c := newCoalescingConn(rc)
	defer c.Close()
	if n, err := c.Write([]byte("frame")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, writes, _ := rc.snapshot(); got == "frame" && writes == 1 {
			break
		}
		if time.Now().After(deadline) {
			got, writes, _ := rc.snapshot()
			t.Fatalf("after 5s below got %q in %d writes, want \"frame\" in 1", got, writes)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescingLoad checks that writes made while the connection below is busy go
// out together, in order, and that Close writes what is pending.
func TestCoalescingLoad(t *testing.T) {
	rc := &recordingConn{gate: make(chan struct{})}
	c := newCoalescingConn(rc)
	var want bytes.Buffer
	for i := range 100 {
		p := []byte{byte(i), byte(i >> 8), 'x'}
		want.Write(p)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	close(rc.gate) // the first write was held up; the other 99 frames wait together
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, writes, closed := rc.snapshot()
	if got != want.String() || writes > 2 || !closed {
		t.Errorf("below: %d bytes in %d writes, closed %v; want the %d bytes in order, in at most 2 writes, closed", len(got), writes, closed, want.Len())
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close = %v, want net.ErrClosed", err)
	}
}

// TestCoalescingError checks that a failed write below fails the next Write.
func TestCoalescingError(t *testing.T) {
	boom := errors.New("broken pipe")
	rc := &recordingConn{fail: boom}
	c := newCoalescingConn(rc)
	defer c.Close()
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatalf("first Write = %v, want nil (the error comes later)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Write([]byte("b"))
		if errors.Is(err, boom) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Write after a failed write below = %v, want %v", err, boom)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockedConn is a connection whose peer reads nothing: a write waits for its
// deadline.
type blockedConn struct {
	recordingConn
	deadline chan time.Time
}

func (b *blockedConn) SetWriteDeadline(t time.Time) error {
	b.deadline <- t
	return nil
}

func (b *blockedConn) Write(p []byte) (int, error) {
	t := <-b.deadline
	time.Sleep(time.Until(t))
	return 0, errors.New("i/o timeout")
}

// TestCoalescingCloseBounded checks that Close returns when the peer reads nothing.
func TestCoalescingCloseBounded(t *testing.T) {
	bc := &blockedConn{deadline: make(chan time.Time, 1)}
	c := newCoalescingConn(bc)
	if _, err := c.Write([]byte("close frame")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		c.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s while the peer read nothing")
	}
}
