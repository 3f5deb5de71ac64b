package store

import (
	"math/bits"
	"time"
)

// Latency describes how long appends waited for the commit that made them
// durable: from Append or AppendAsync to the fsync, over the last one to two
// minutes (latencyWindow). It is what MaxBatch and MaxDelay trade against
// fsyncs. The percentiles are upper bounds of power-of-two buckets of
// microseconds, so at most twice the true value.
type Latency struct {
	Count    uint64        // appends measured in the window
	P50, P99 time.Duration // 50th and 99th percentile
	Max      time.Duration // the longest
}

// latencyWindow is how long a window of ack latencies lasts: Stats reports the
// current window and the previous one.
const latencyWindow = time.Minute

// latencyBuckets: bucket k counts waits below 2^k µs; the last one the rest.
const latencyBuckets = 27 // 2^26 µs ≈ 67 s

// latencyHist is a histogram of ack latencies, owned by the committer.
type latencyHist struct {
	counts [latencyBuckets]uint64
	n      uint64
	max    time.Duration
}

func (h *latencyHist) add(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	k := min(bits.Len64(us), latencyBuckets-1)
	h.counts[k]++
	h.n++
	h.max = max(h.max, d)
}

// ackLatency keeps the current and the previous window.
type ackLatency struct {
	cur, prev latencyHist
	started   time.Time // of cur
}

// observe records one append that waited d, at now.
func (a *ackLatency) observe(d time.Duration, now time.Time) {
	a.roll(now)
	a.cur.add(d)
}

// roll starts a new window when the current one is over.
func (a *ackLatency) roll(now time.Time) {
	switch {
	case a.started.IsZero():
		a.started = now
	case now.Sub(a.started) >= 2*latencyWindow:
		a.prev, a.cur, a.started = latencyHist{}, latencyHist{}, now
	case now.Sub(a.started) >= latencyWindow:
		a.prev, a.cur, a.started = a.cur, latencyHist{}, now
	}
}

// snapshot returns the percentiles over both windows.
func (a *ackLatency) snapshot(now time.Time) Latency {
	a.roll(now)
	var h latencyHist
	for k := range h.counts {
		h.counts[k] = a.cur.counts[k] + a.prev.counts[k]
	}
	h.n = a.cur.n + a.prev.n
	h.max = max(a.cur.max, a.prev.max)
	if h.n == 0 {
		return Latency{}
	}
	return Latency{Count: h.n, P50: h.quantile(0.50), P99: h.quantile(0.99), Max: h.max}
}

// quantile returns the upper bound of the bucket holding quantile q, capped at
// the maximum seen.
func (h *latencyHist) quantile(q float64) time.Duration {
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for k, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(uint64(1)<<k)*time.Microsecond, h.max)
		}
	}
	return h.max
}
