package edge

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRateLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var r rateLog
	for i := 0; i < 100; i++ {
		r.warnKey("a@10.0.0.1", log, "device authentication failed")
	}
	r.warnKey("b@10.0.0.2", log, "device authentication failed")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines for 100 failures of one device and 1 of another, want 2:\n%s", n, buf.String())
	}
	if peerText(strings.Repeat("x", 1000)) == strings.Repeat("x", 1000) {
		t.Fatal("peerText did not shorten a 1000-byte text")
	}
}
