package mqtt

import (
	"log/slog"
	"sync"
	"time"
)

// logInterval is the least time between two warnings of one kind: a device that sends
// garbage in a loop must not flood the log.
const logInterval = time.Second

// rateLog writes at most one warning per logInterval and counts the ones it leaves
// out, reporting the count with the next one. It is safe for concurrent use.
type rateLog struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

func (r *rateLog) warn(log *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Before(r.next) {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.suppressed, r.next = 0, now.Add(logInterval)
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
