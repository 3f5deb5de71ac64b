package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var r Limiter
	for i := 0; i < 100; i++ {
		r.WarnKey("a@10.0.0.1", log, "device authentication failed")
	}
	r.WarnKey("b@10.0.0.2", log, "device authentication failed")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines for 100 failures of one device and 1 of another, want 2:\n%s", n, buf.String())
	}
}

// After the interval the next line says how many were left out, under the attribute
// the Limiter names.
func TestLimiterCountsSuppressed(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Limiter{Now: func() time.Time { return now }, Suppressed: "more_since_last_line"}
	for i := 0; i < 3; i++ {
		r.Warn(log, "dead-lettered")
	}
	now = now.Add(Every)
	r.Warn(log, "dead-lettered")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "more_since_last_line=2") {
		t.Fatalf("got %q, want two lines, the second with more_since_last_line=2", lines)
	}
}
