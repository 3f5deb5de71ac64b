package backoff

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		name string
		rand float64
		want []time.Duration
	}{
		// Without jitter the delay is half the step: min/2, min, 2·min, ... max/2.
		{"least jitter", 0, []time.Duration{50, 100, 200, 400, 400, 400}},
		{"most jitter", 0.999999, []time.Duration{100, 200, 400, 800, 800, 800}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond, Rand: func() float64 { return tt.rand }}
			for i, want := range tt.want {
				want *= time.Millisecond
				if got := b.Next().Round(time.Millisecond); got != want {
					t.Errorf("attempt %d: got %v, want %v", i+1, got, want)
				}
			}
			if b.Failures != len(tt.want) {
				t.Errorf("failures: got %d, want %d", b.Failures, len(tt.want))
			}
			b.Reset()
			if got, want := b.Next().Round(time.Millisecond), tt.want[0]*time.Millisecond; got != want {
				t.Errorf("after reset: got %v, want %v", got, want)
			}
		})
	}
}

func TestBackoffLongOutage(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Minute, Rand: func() float64 { return 0.5 }}
	for range 1000 { // doubling must not overflow
		if d := b.Next(); d <= 0 || d > time.Minute {
			t.Fatalf("got %v, want within (0, 1m]", d)
		}
	}
}

// TestBackoffJitterSpread checks that gateways which lost the cloud together retry
// apart: 1,000 backoffs with real randomness, at the same failure count, spread
// evenly over the upper half of the step.
func TestBackoffJitterSpread(t *testing.T) {
	const n = 1000
	step := 800 * time.Millisecond // the 4th attempt with min 100ms
	var buckets [10]int
	for range n {
		b := Backoff{Min: 100 * time.Millisecond, Max: time.Minute, Rand: rand.Float64, Failures: 3}
		d := b.Next()
		if d < step/2 || d > step {
			t.Fatalf("got %v, want within [%v, %v]", d, step/2, step)
		}
		buckets[int((d-step/2)*10/(step/2+1))]++
	}
	for i, c := range buckets {
		if c < n/10/2 || c > n/10*2 { // far outside uniform's 100±30
			t.Errorf("bucket %d of 10: got %d of %d delays, want about %d: %v", i, c, n, n/10, buckets)
		}
	}
}
