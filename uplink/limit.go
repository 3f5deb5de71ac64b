package uplink

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket over messages and bytes: each second adds msgRate message
// tokens and byteRate byte tokens, and a bucket holds at most one second's worth, so a
// drain after an outage starts with at most one second's burst. A zero rate means no
// limit on that dimension. It is safe for concurrent use; wait sleeps in the caller.
type limiter struct {
	msgRate, byteRate float64

	mu          sync.Mutex
	msgs, bytes float64 // tokens; negative while a caller waits for them
	last        time.Time
	now         func() time.Time
	after       func(time.Duration) <-chan time.Time
}

func newLimiter(msgRate float64, byteRate int, now func() time.Time, after func(time.Duration) <-chan time.Time) *limiter {
	if msgRate <= 0 && byteRate <= 0 {
		return nil
	}
	return &limiter{msgRate: msgRate, byteRate: float64(byteRate), msgs: msgRate, bytes: float64(byteRate), now: now, after: after}
}

// reserve takes one message and size bytes and returns how long to wait for them.
func (l *limiter) reserve(size int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		dt := now.Sub(l.last).Seconds()
		l.msgs = min(l.msgs+dt*l.msgRate, l.msgRate)
		l.bytes = min(l.bytes+dt*l.byteRate, l.byteRate)
	}
	l.last = now
	var wait float64
	if l.msgRate > 0 {
		l.msgs--
		if l.msgs < 0 {
			wait = -l.msgs / l.msgRate
		}
	}
	if l.byteRate > 0 {
		l.bytes -= float64(size)
		if l.bytes < 0 {
			wait = max(wait, -l.bytes/l.byteRate)
		}
	}
	return time.Duration(wait * float64(time.Second))
}

// wait blocks until one message of size bytes may be sent, or ctx ends. A nil limiter
// never waits.
func (l *limiter) wait(ctx context.Context, size int) error {
	if l == nil {
		return nil
	}
	d := l.reserve(size)
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-l.after(d):
		return nil
	}
}
