package uplink

import "time"

// backoff computes the delays between failed connection attempts: min·2ⁿ after the
// n-th consecutive failure, capped at max, of which a random half is taken away
// ("equal jitter") so that gateways that lost the cloud together do not come back in
// step. It is not safe for concurrent use; the Run goroutine owns it.
type backoff struct {
	min, max time.Duration
	rand     func() float64 // uniform in [0, 1)
	failures int
}

// next returns the delay before the next attempt and counts a failure.
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

// reset starts over at min, after an attempt that worked.
func (b *backoff) reset() { b.failures = 0 }
