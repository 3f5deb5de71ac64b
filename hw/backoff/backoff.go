// Package backoff computes the delays between retries of something that keeps failing:
// a sensor that stopped answering, a serial adapter that was unplugged, a cloud
// connection; and it holds the one clock abstraction of whatever waits between attempts.
// It lives beside the sensor inputs, its first users, and imports nothing of the gateway,
// so that the uplink and hw share it without either depending on the other.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff gives Min·2ⁿ after the n-th consecutive failure, capped at Max, of which a
// random half is taken away ("equal jitter"), so that gateways that lost the cloud
// together do not come back in step. Rand, uniform in [0, 1), may be nil for
// math/rand/v2; tests set it. It is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	Rand     func() float64
	Failures int // consecutive failures so far
}

// Next counts a failure and returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.Failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.Failures++
	rnd := b.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// Reset starts over at Min, after an attempt that worked.
func (b *Backoff) Reset() { b.Failures = 0 }
