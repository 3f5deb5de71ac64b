package uplink

import (
	"log/slog"
	"sync"
	"time"
)

// deadLetterLogEvery is the least time between two warn lines about dead letters.
const deadLetterLogEvery = 10 * time.Second

// deadLetters limits the warn lines about dead-lettered messages, so that a cloud that
// rejects everything does not flood the log: one line, then at most one per
// deadLetterLogEvery, counting the ones in between. It is safe for concurrent use.
type deadLetters struct {
	mu         sync.Mutex
	last       time.Time // of the last warn line
	suppressed int       // dead letters since then without a warn line
}

// deadLetterLog logs that message seq was dead-lettered: always at debug, at warn
// within the rate limit.
func (u *Uplink) deadLetterLog(seq uint64, address, reason string) {
	u.log.Debug("dead-lettered", "seq", seq, "address", address, "reason", reason)
	now := u.clk.now()
	d := &u.dead
	d.mu.Lock()
	if !d.last.IsZero() && now.Sub(d.last) < deadLetterLogEvery {
		d.suppressed++
		d.mu.Unlock()
		return
	}
	suppressed := d.suppressed
	d.last, d.suppressed = now, 0
	d.mu.Unlock()
	attrs := []any{"seq", seq, "address", address, "reason", reason}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("more_since_last_line", suppressed))
	}
	u.log.Warn("message dead-lettered", attrs...)
}
