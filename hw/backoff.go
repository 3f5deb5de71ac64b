package hw

import (
	"math/rand/v2"
	"time"
)

// Clock is the time source of an Input; tests inject one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// backoff computes the delay before the next attempt to open or read a failing input:
// min·2ⁿ after the n-th consecutive failure, capped at max, less a random part of up to
// half ("equal jitter"). It is owned by the Run goroutine.
type backoff struct {
	min, max time.Duration
	rand     func() float64 // uniform in [0, 1)
	failures int
}

func newBackoff(min, max time.Duration, rnd func() float64) *backoff {
	if rnd == nil {
		rnd = rand.Float64
	}
	return &backoff{min: min, max: max, rand: rnd}
}

// next counts a failure and returns the delay before the next attempt.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.failures && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.failures++
	half := d / 2
	return half + time.Duration(b.rand()*float64(d-half))
}

// reset starts over after a success.
func (b *backoff) reset() { b.failures = 0 }
