package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestJournalWriter checks that every record gets the syslog priority of its level.
func TestJournalWriter(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(journalWriter{&out}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Debug("d")
	log.Info("i", "note", "level=ERROR in a value")
	log.Warn("w")
	log.Error("e")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{"<7>", "<6>", "<4>", "<3>"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"time=") {
			t.Errorf("line %d: %q, want the prefix %s", i, l, want[i])
		}
	}
}
