package hw

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		name string
		rand float64
		want []time.Duration
	}{
		{"least jitter", 0, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}},
		{"most jitter", 0.999999, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}},
	} {
		b := newBackoff(time.Second, 8*time.Second, func() float64 { return tt.rand })
		for i, want := range tt.want {
			if got := b.next(); got.Round(time.Millisecond) != want {
				t.Errorf("%s: attempt %d: delay %v, want %v", tt.name, i+1, got, want)
			}
		}
		b.reset()
		if got := b.next().Round(time.Millisecond); got != tt.want[0] {
			t.Errorf("%s: after reset: %v, want %v", tt.name, got, tt.want[0])
		}
	}
}
