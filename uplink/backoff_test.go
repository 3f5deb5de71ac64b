package uplink

import (
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
			b := backoff{min: 100 * time.Millisecond, max: 800 * time.Millisecond, rand: func() float64 { return tt.rand }}
			for i, want := range tt.want {
				want *= time.Millisecond
				if got := b.next().Round(time.Millisecond); got != want {
					t.Errorf("attempt %d: got %v, want %v", i+1, got, want)
				}
			}
			if b.failures != len(tt.want) {
				t.Errorf("failures: got %d, want %d", b.failures, len(tt.want))
			}
			b.reset()
			if got, want := b.next().Round(time.Millisecond), tt.want[0]*time.Millisecond; got != want {
				t.Errorf("after reset: got %v, want %v", got, want)
			}
		})
	}
}

func TestBackoffLongOutage(t *testing.T) {
	b := backoff{min: time.Second, max: time.Minute, rand: func() float64 { return 0.5 }}
	for range 1000 { // doubling must not overflow
		if d := b.next(); d <= 0 || d > time.Minute {
			t.Fatalf("got %v, want within (0, 1m]", d)
		}
	}
}
