package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shadowgw/shadowgw/store"
)

const (
	// sampleEvery is how often the monitor reads the counters for the rates.
	sampleEvery = 5 * time.Second
	// rateWindow is the span the rates in the status are averaged over.
	rateWindow = time.Minute
)

// processStarted is when the gateway process started, near enough.
var processStarted = time.Now()

// monitor computes what the status, the metrics and the health endpoints report from
// the running components. It is safe for concurrent use.
type monitor struct {
	p   parts
	now func() time.Time
	dir string // the data directory, absolute

	mu      sync.Mutex
	samples []sample // oldest first, spanning about rateWindow
	health  storeHealth
	day     string // local date of dayBase, 2006-01-02
	dayBase uint64 // written bytes at the start of day
}

// sample is a reading of the counters the rates come from.
type sample struct {
	at               time.Time
	in, inBytes, out uint64
}

func newMonitor(p parts, now func() time.Time) *monitor {
	m := &monitor{p: p, now: now, dir: filepath.Dir(p.Store.Path())}
	if abs, err := filepath.Abs(m.dir); err == nil {
		m.dir = abs
	}
	m.samples = []sample{m.take()}
	m.health.prev = p.Store.Stats()
	m.day = processStarted.Format(time.DateOnly) // the process's counter started at 0
	return m
}

func (m *monitor) take() sample {
	e := m.p.Edge.Stats()
	s := sample{at: m.now(), in: e.Messages, inBytes: e.Bytes}
	if m.p.Uplink != nil {
		u := m.p.Uplink.Status()
		s.out = u.Forwarded + u.DeadLettered
	}
	return s
}

// sample reads the counters every sampleEvery until ctx is done.
func (m *monitor) sample(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.tick()
		}
	}
}

func (m *monitor) tick() {
	s := m.take()
	st := m.p.Store.Stats()
	written, werr := readWriteBytes()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, s)
	// Keep the newest sample that is at least rateWindow old as the window's start.
	i := 0
	for i+1 < len(m.samples) && s.at.Sub(m.samples[i+1].at) >= rateWindow {
		i++
	}
	m.samples = append(m.samples[:0], m.samples[i:]...)
	m.health.observe(st)
	if werr == nil {
		m.rollDay(s.at, written)
	}
}

// rollDay restarts the day's count of written bytes at the first reading of a new day.
// m.mu must be held.
func (m *monitor) rollDay(now time.Time, written uint64) {
	if d := now.Format(time.DateOnly); d != m.day {
		m.day, m.dayBase = d, written
	}
}

// storeHealth decides from successive snapshots of the store's counters whether its
// commits fail: they do once only errors were added since the last look, and they work
// again once only commits were. When both were added the order is unknown and the
// store counts as failing until a look sees only commits.
type storeHealth struct {
	prev    store.Stats
	failing bool
}

func (h *storeHealth) observe(s store.Stats) bool {
	moreCommits, moreErrors := s.Commits > h.prev.Commits, s.CommitErrors > h.prev.CommitErrors
	switch {
	case moreErrors:
		h.failing = true
	case moreCommits:
		h.failing = false
	}
	h.prev = s
	return h.failing
}

// notReady returns why the gateway is not ready, or "" when it is: the device listener
// is up (this runs only while it is) and the store is open and commits.
func (m *monitor) notReady() string {
	st := m.p.Store.Stats()
	m.mu.Lock()
	failing := m.health.observe(st)
	m.mu.Unlock()
	if failing {
		return fmt.Sprintf("store commits are failing (%d failed since start; see the log)", st.CommitErrors)
	}
	if _, err := m.p.Store.OldestReceived(); errors.Is(err, store.ErrClosed) {
		return "store is closed"
	}
	return ""
}

// status gathers the report.
func (m *monitor) status() statusReport {
	cur := m.take()
	now := cur.at
	r := statusReport{Version: versionString(), PID: os.Getpid(), Started: processStarted, Time: now}
	r.NotReady = m.notReady()
	r.Ready = r.NotReady == ""

	r.Uplink = uplinkReport{State: "none"}
	if m.p.Uplink != nil {
		u := m.p.Uplink.Status()
		r.Uplink = uplinkReport{
			Configured: true, State: u.State.String(), Endpoint: u.Endpoint,
			ConnectedSince: u.ConnectedSince, LastError: u.LastError, LastErrorAt: u.LastErrorAt,
			NextRetry: u.NextRetry, Failures: u.Failures,
			Forwarded: u.Forwarded, DeadLettered: u.DeadLettered, Released: u.Released, InFlight: u.InFlight,
		}
	}

	r.MQTT = newMQTTReport(m.p.MQTT)
	e := m.p.Edge.Stats()
	r.Devices = deviceReport{
		Connected: e.Connections, ConnectionsTotal: e.ConnectionsTotal, Refused: e.Refused,
		Messages: e.Messages, Bytes: e.Bytes, Rejected: e.Rejected, Dropped: e.Dropped,
	}

	s := m.p.Store.Stats()
	r.Store = storeReport{Messages: s.Messages, Bytes: s.Bytes, Dropped: s.DroppedOldest, FullReason: s.FullReason, Recovered: s.Recovered,
		DroppedTotal: s.DroppedTotal, ExpiredTotal: s.ExpiredTotal,
		AckLatency: latencyReport{Count: s.AckLatency.Count, P50ms: millis(s.AckLatency.P50), P99ms: millis(s.AckLatency.P99), MaxMs: millis(s.AckLatency.Max)}}
	oldest, _ := m.p.Store.Oldest() // an error (a closed store) leaves the ages out
	r.Routes = make([]routeReport, 0, len(s.Routes))
	for _, rs := range s.Routes {
		rr := routeReport{
			Name: rs.Name, Priority: rs.Priority, WhenFull: rs.WhenFull.String(), MaxBytes: rs.MaxBytes, MaxMessages: rs.MaxMessages,
			Messages: rs.Messages, Bytes: rs.Bytes, Dropped: rs.Dropped, FullReason: rs.FullReason, Orphan: rs.Orphan,
		}
		if t, ok := oldest[rs.Name]; ok {
			rr.OldestReceived = t
			rr.OldestAgeSeconds = age(now, t).Seconds()
		}
		r.Routes = append(r.Routes, rr)
	}
	r.Direct = directStatus(m.p)
	r.Problems = problems(r.Store, r.Routes)
	r.DeadLetters = countReport{Messages: s.DeadLetters, Bytes: s.DeadLetterBytes}

	m.mu.Lock()
	base := m.samples[0]
	m.mu.Unlock()
	r.Rates = rates(base, cur, s.Messages)

	r.Disk.Dir = m.dir
	if free, size, err := diskSpace(r.Disk.Dir); err != nil {
		r.Disk.Error = err.Error()
	} else {
		r.Disk.FreeBytes, r.Disk.SizeBytes = free, size
	}
	if size, err := fileSize(m.p.Store.Path()); err == nil {
		r.Disk.StoreFileBytes = size
	}
	if written, err := readWriteBytes(); err == nil {
		m.mu.Lock()
		m.rollDay(now, written)
		today := written - min(m.dayBase, written)
		m.mu.Unlock()
		r.Disk.WrittenToday, r.Disk.WrittenSinceStart = &today, &written
	}

	r.Inputs = []inputStatus{}
	r.Inputs = append(r.Inputs, m.p.Inputs.get()...)
	r.Commands = m.commandsStatus(now)
	return r
}

// problems lists what needs a person's attention in the store: a damaged file that was
// replaced at start, and routes that take no messages. Each is one sentence.
func problems(st storeReport, routes []routeReport) []string {
	var out []string
	if st.Recovered != nil {
		out = append(out, recoveredProblem(st.Recovered))
	}
	if st.FullReason != "" {
		out = append(out, fmt.Sprintf("the store is full (%s): devices get no credit", st.FullReason))
		return out // every route is full for the same reason
	}
	for _, rt := range routes {
		if rt.FullReason != "" && !rt.Orphan {
			out = append(out, fmt.Sprintf("route %s is full (%s): devices sending to it get no credit", rt.Name, rt.FullReason))
		}
	}
	return out
}

// recoveredProblem says that the store file was damaged and where it went.
func recoveredProblem(rec *store.Recovered) string {
	lost := fmt.Sprintf("%d lost", rec.Lost)
	if rec.Lost < 0 {
		lost = "an unknown number lost"
	}
	return fmt.Sprintf("the store file was damaged (%s) and replaced by a fresh one at %s: %d messages and dead letters salvaged, %s; the damaged file was moved to %s",
		rec.Cause, rec.At.Format(time.RFC3339), rec.Salvaged, lost, rec.MovedTo)
}

// rates returns the rates between two samples and when a backlog of that many messages
// empties at them.
func rates(from, to sample, backlog uint64) rateReport {
	dt := to.at.Sub(from.at).Seconds()
	if dt <= 0 {
		return rateReport{}
	}
	r := rateReport{
		WindowSeconds:        dt,
		InMessagesPerSecond:  float64(to.in-from.in) / dt,
		InBytesPerSecond:     float64(to.inBytes-from.inBytes) / dt,
		OutMessagesPerSecond: float64(to.out-from.out) / dt,
	}
	switch drain := r.OutMessagesPerSecond - r.InMessagesPerSecond; {
	case backlog == 0:
		r.TimeToEmptySeconds = new(float64)
	case drain > 0:
		eta := float64(backlog) / drain
		r.TimeToEmptySeconds = &eta
	}
	return r
}

func (m *monitor) serveStatus(w http.ResponseWriter, r *http.Request) {
	b, err := json.MarshalIndent(m.status(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}
