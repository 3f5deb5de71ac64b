package main

import (
	"bytes"
	"io"
	"os"
)

// journalWriter gives each line of the log, as slog's text handler writes it (one
// record per Write, "time=... level=LEVEL msg=..."), the syslog priority of its level
// as a "<N>" prefix (sd-daemon(3)). journald, reading the service's stderr, turns the
// prefix into the entry's PRIORITY=, so that `journalctl -p warning` and the colours
// of journalctl follow the gateway's levels; without it every line is info.
type journalWriter struct{ w io.Writer }

// underJournal reports whether w is stderr and stderr is connected to the journal:
// systemd sets JOURNAL_STREAM for a service whose output goes there (systemd.exec(5)).
func underJournal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && f == os.Stderr && os.Getenv("JOURNAL_STREAM") != ""
}

// priority returns the "<N>" prefix of a text handler record.
func priority(p []byte) []byte {
	_, rest, ok := bytes.Cut(p, []byte(" level="))
	if !ok && bytes.HasPrefix(p, []byte("level=")) {
		rest, ok = p[len("level="):], true
	}
	switch {
	case !ok:
		return []byte("<6>")
	case bytes.HasPrefix(rest, []byte("DEBUG")):
		return []byte("<7>") // LOG_DEBUG
	case bytes.HasPrefix(rest, []byte("WARN")):
		return []byte("<4>") // LOG_WARNING
	case bytes.HasPrefix(rest, []byte("ERROR")):
		return []byte("<3>") // LOG_ERR
	}
	return []byte("<6>") // LOG_INFO
}

func (j journalWriter) Write(p []byte) (int, error) {
	line := append(priority(p), p...)
	if _, err := j.w.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}
