package mqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var r rateLog
	for range 100 {
		r.warn(log, "bad client")
	}
	if n := strings.Count(buf.String(), "bad client"); n != 1 {
		t.Fatalf("%d lines within the interval, want 1:\n%s", n, buf.String())
	}
	r.mu.Lock()
	r.next = time.Now() // the interval is over
	r.mu.Unlock()
	r.warn(log, "bad client")
	if !strings.Contains(buf.String(), "suppressed=99") {
		t.Fatalf("the next line does not count the 99 left out:\n%s", buf.String())
	}
}
