package mqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The server's warnings are limited to one per second and kind, with the count of the
// ones left out.
func TestRateLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s := New(Config{}, nil, nil, nil)
	now := time.Now()
	r := &s.logDenied
	r.Now = func() time.Time { return now }
	for range 100 {
		r.Warn(log, "bad client")
	}
	if n := strings.Count(buf.String(), "bad client"); n != 1 {
		t.Fatalf("%d lines within the interval, want 1:\n%s", n, buf.String())
	}
	now = now.Add(time.Second) // the interval is over
	r.Warn(log, "bad client")
	if !strings.Contains(buf.String(), "suppressed=99") {
		t.Fatalf("the next line does not count the 99 left out:\n%s", buf.String())
	}
}
