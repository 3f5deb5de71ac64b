// Package lograte limits warnings that a peer can trigger over and over (one per message,
// per connection attempt, per refused delivery) to one line per key and interval, with
// the number of lines left out since. It is the gateway's one rate-limited logger:
// package edge uses it for devices, and the uplink can use it for the cloud. It knows
// nothing of AMQP.
package lograte

import (
	"log/slog"
	"sync"
	"time"
)

// Every is the default least time between two lines for the same key.
const Every = 10 * time.Second

// MaxKeys bounds the keys a Limiter remembers; past it, it forgets them all.
const MaxKeys = 1024

// Limiter logs a repeated warning at most once per Every and key (a device, a source
// address), with the number of times it was suppressed since. The zero value is ready;
// it is safe for concurrent use.
type Limiter struct {
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Every is the least time between two lines for one key; 0 means the package's Every.
	Every time.Duration
	// Suppressed is the attribute that counts the lines left out; "" means
	// "suppressed_since_last".
	Suppressed string

	mu   sync.Mutex
	keys map[string]*seen
}

type seen struct {
	last       time.Time
	suppressed int
}

// Warn logs msg with args unless it was logged less than Every ago.
func (r *Limiter) Warn(log *slog.Logger, msg string, args ...any) { r.WarnKey("", log, msg, args...) }

// WarnKey is Warn for one key.
func (r *Limiter) WarnKey(key string, log *slog.Logger, msg string, args ...any) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	every := r.Every
	if every <= 0 {
		every = Every
	}
	r.mu.Lock()
	t := now()
	if r.keys == nil || len(r.keys) >= MaxKeys {
		r.keys = make(map[string]*seen)
	}
	e := r.keys[key]
	if e == nil {
		e = &seen{}
		r.keys[key] = e
	}
	if !e.last.IsZero() && t.Sub(e.last) < every {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	n := e.suppressed
	e.last, e.suppressed = t, 0
	r.mu.Unlock()
	if n > 0 {
		name := r.Suppressed
		if name == "" {
			name = "suppressed_since_last"
		}
		args = append(args, name, n)
	}
	log.Warn(msg, args...)
}
