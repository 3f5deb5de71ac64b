package edge

import (
	"log/slog"
	"sync"
	"time"
)

// logEvery is how often a repeated warning (one that a single device can trigger per
// message or per connection attempt) is logged at most.
const logEvery = 10 * time.Second

// rateLog logs a repeated warning at most once per logEvery and key (a device, a source
// address), with the number of times it was suppressed since. It is safe for concurrent
// use; it remembers at most maxKeys keys.
type rateLog struct {
	mu   sync.Mutex
	keys map[string]*seen
}

type seen struct {
	last       time.Time
	suppressed int
}

const maxKeys = 1024

// warn logs msg with args unless it was logged for the same key less than logEvery ago.
func (r *rateLog) warn(log *slog.Logger, msg string, args ...any) { r.warnKey("", log, msg, args...) }

// warnKey is warn for one key.
func (r *rateLog) warnKey(key string, log *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if r.keys == nil || len(r.keys) >= maxKeys {
		r.keys = make(map[string]*seen)
	}
	e := r.keys[key]
	if e == nil {
		e = &seen{}
		r.keys[key] = e
	}
	if !e.last.IsZero() && now.Sub(e.last) < logEvery {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	log.Warn(msg, args...)
}

// maxPeerText bounds text a peer chose (error descriptions) in log lines.
const maxPeerText = 256

// peerText shortens s, which came from a device, for a log line.
func peerText(s string) string {
	if len(s) <= maxPeerText {
		return s
	}
	return s[:maxPeerText] + "…"
}
