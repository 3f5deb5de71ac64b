package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink"
)

func init() {
	register("status", "show the running gateway's uplink, backlog per route, rates, disk and devices (needs [metrics] listen)",
		func(args []string, io stdio) error { return cmdStatus(args, io.out, io.err) })
}

const (
	// sampleEvery is how often the monitor reads the counters for the rates.
	sampleEvery = 5 * time.Second
	// rateWindow is the span the rates in the status are averaged over.
	rateWindow = time.Minute
)

// processStarted is when the gateway process started, near enough.
var processStarted = time.Now()

// statusReport is what /status serves and `shadowgw status` prints. It holds no secret.
// Times are RFC 3339, durations and ages are seconds, sizes are bytes.
type statusReport struct {
	Version     string        `json:"version"`
	PID         int           `json:"pid"`
	Started     time.Time     `json:"started"`
	Time        time.Time     `json:"time"`
	Ready       bool          `json:"ready"`
	NotReady    string        `json:"not_ready,omitempty"` // why not, when Ready is false
	Problems    []string      `json:"problems,omitempty"`  // what needs a person's attention
	Uplink      uplinkReport  `json:"uplink"`
	Devices     deviceReport  `json:"devices"`
	Store       storeReport   `json:"store"`
	Routes      []routeReport `json:"routes"` // highest priority first
	DeadLetters countReport   `json:"dead_letters"`
	Rates       rateReport    `json:"rates"`
	Disk        diskReport    `json:"disk"`
	Inputs      []inputStatus `json:"inputs"`
}

type uplinkReport struct {
	Configured     bool      `json:"configured"`
	State          string    `json:"state"` // "none" when not configured, else uplink.State
	Endpoint       string    `json:"endpoint,omitempty"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	NextRetry      time.Time `json:"next_retry,omitzero"`
	Failures       int       `json:"failures"` // consecutive failed attempts
	Forwarded      uint64    `json:"forwarded"`
	DeadLettered   uint64    `json:"dead_lettered"`
	Released       uint64    `json:"released"`
	InFlight       int64     `json:"in_flight"`
}

type deviceReport struct {
	Connected        int64  `json:"connected"`
	ConnectionsTotal uint64 `json:"connections_total"`
	Refused          uint64 `json:"refused"`
	Messages         uint64 `json:"messages"` // received and stored
	Bytes            uint64 `json:"bytes"`
	Rejected         uint64 `json:"rejected"`
	Dropped          uint64 `json:"dropped"`
}

// storeReport is the store as a whole; routeReport one of its routes.
type storeReport struct {
	Messages uint64 `json:"messages"` // queued, over all routes
	Bytes    uint64 `json:"bytes"`
	Dropped  uint64 `json:"dropped"` // to make room (drop-oldest) since start, over all routes
	// FullReason says why no route can take a message ("max-bytes", "max-messages",
	// "min-free", "disk", or the default route's own budget), absent when some can.
	FullReason string `json:"full_reason,omitempty"`
	// Recovered is set when the gateway found the store file damaged at start, moved
	// it aside and started a fresh one.
	Recovered *store.Recovered `json:"recovered,omitempty"`
	// DroppedTotal and ExpiredTotal count over the life of the store file, across
	// restarts.
	DroppedTotal uint64 `json:"dropped_total"`
	ExpiredTotal uint64 `json:"expired_total"`
	// AckLatency is how long messages waited for the commit that made them durable
	// (group commit), over the last one to two minutes.
	AckLatency latencyReport `json:"ack_latency"`
}

// latencyReport is a store.Latency in milliseconds.
type latencyReport struct {
	Count uint64  `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type routeReport struct {
	Name        string `json:"name"`
	Priority    int    `json:"priority"`
	WhenFull    string `json:"when_full"`
	MaxBytes    uint64 `json:"max_bytes"`    // the route's own budget, 0: none
	MaxMessages uint64 `json:"max_messages"` // the route's own budget, 0: none
	Messages    uint64 `json:"messages"`
	Bytes       uint64 `json:"bytes"`
	Dropped     uint64 `json:"dropped"` // to make room since start
	// FullReason says why devices sending to the route get no credit, absent when
	// they do: "route max-bytes", "route max-messages" (its own budget), or one of
	// the store's (see storeReport).
	FullReason string `json:"full_reason,omitempty"`
	// Orphan is set for a route the store file has but the configuration no longer
	// names: its messages moved to the configured routes at start (those it could
	// not read stay and are forwarded at priority 0).
	Orphan           bool      `json:"orphan,omitempty"`
	OldestReceived   time.Time `json:"oldest_received,omitzero"`
	OldestAgeSeconds float64   `json:"oldest_age_seconds"`
}

type countReport struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

type rateReport struct {
	WindowSeconds        float64 `json:"window_seconds"`
	InMessagesPerSecond  float64 `json:"in_messages_per_second"`
	InBytesPerSecond     float64 `json:"in_bytes_per_second"`
	OutMessagesPerSecond float64 `json:"out_messages_per_second"` // forwarded and dead-lettered
	// TimeToEmptySeconds estimates when the backlog is empty at these rates: 0 when it
	// is, absent when it is not shrinking.
	TimeToEmptySeconds *float64 `json:"time_to_empty_seconds,omitempty"`
}

type diskReport struct {
	Dir            string `json:"dir"`
	FreeBytes      uint64 `json:"free_bytes"`
	SizeBytes      uint64 `json:"size_bytes"`
	StoreFileBytes int64  `json:"store_file_bytes"`
	// WrittenToday is what the process wrote to storage since local midnight, or since
	// it started if that was later; WrittenSinceStart since it started. Both are absent
	// when the kernel does not account I/O per process (/proc/self/io).
	WrittenToday      *uint64 `json:"written_today_bytes,omitempty"`
	WrittenSinceStart *uint64 `json:"written_since_start_bytes,omitempty"`
	Error             string  `json:"error,omitempty"`
}

// inputStatus is one sensor input on the status page. The inputs sidecar fills it
// through reportInputs.
type inputStatus struct {
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`  // what is read, e.g. "bme280" or "gpio"
	State      string    `json:"state"` // e.g. "ok" or "failing"
	LastSample time.Time `json:"last_sample,omitzero"`
	Samples    uint64    `json:"samples"` // readings stored since start
	LastError  string    `json:"last_error,omitempty"`
}

// inputReporter is the hook through which the sensor inputs appear in the status.
var inputReporter atomic.Pointer[func() []inputStatus]

// reportInputs makes f the source of the status's inputs; the inputs sidecar calls it
// when it starts, and with nil when it stops. f is called from HTTP handlers, so it
// must be safe for concurrent use and quick.
func reportInputs(f func() []inputStatus) {
	if f == nil {
		inputReporter.Store(nil)
		return
	}
	inputReporter.Store(&f)
}

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
	if f := inputReporter.Load(); f != nil {
		r.Inputs = append(r.Inputs, (*f)()...)
	}
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

// diskSpace returns the bytes available to unprivileged users and the size of the file
// system holding dir.
func diskSpace(dir string) (free, size uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil
}

func fileSize(name string) (int64, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// readWriteBytes returns write_bytes from /proc/self/io: the bytes this process caused
// to be sent to storage, which is what wears an SD card (page-cache writes that are
// overwritten before they are flushed do not count).
func readWriteBytes() (uint64, error) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/self/io has no write_bytes line")
}

// cmdStatus asks the running gateway for its status over its local HTTP endpoint.
func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "find the gateway's endpoint in `FILE`'s [metrics] listen (default: 127.0.0.1:9464)")
	addr := fs.String("addr", "", "ask the gateway's endpoint at `HOST:PORT` instead")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after `DURATION`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: shadowgw status [--config FILE | --addr HOST:PORT] [--json]\n\n"+
			"Reads /status from the gateway's local HTTP endpoint, which runs while [metrics]\n"+
			"listen is set (the default is 127.0.0.1:9464).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shadowgw status: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	target := *addr
	if target == "" {
		cfg := config.Default()
		if *path != "" {
			var err error
			if cfg, err = config.Load(*path); err != nil {
				return err
			}
		}
		if cfg.Metrics.Listen == "" {
			return fmt.Errorf("[metrics] listen is empty in %s, so the gateway serves no status: set it (for example to 127.0.0.1:9464) and restart the gateway",
				orDefault(*path, "the defaults"))
		}
		target = cfg.Metrics.Listen
	}
	target = dialAddr(target)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no gateway status at %s (is the gateway running, with [metrics] listen = %s?): %w", target, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the status from %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status from %s: %s", target, resp.Status)
	}
	var r statusReport
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("status from %s: %w", target, err)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var b bytes.Buffer
	printStatus(&b, r)
	_, err = stdout.Write(b.Bytes())
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dialAddr turns a listen address into one to connect to: an empty or unspecified host
// means this host.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// printStatus writes r for a person.
func printStatus(w io.Writer, r statusReport) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	ready := "ready"
	if !r.Ready {
		ready = "NOT READY: " + r.NotReady
	}
	fmt.Fprintf(w, "shadowgw %s, pid %d, up %s, %s\n", r.Version, r.PID, roundDuration(r.Time.Sub(r.Started)), ready)
	for _, p := range r.Problems {
		line("PROBLEM", "%s", p)
	}

	u := r.Uplink
	switch {
	case !u.Configured:
		line("uplink", "none configured: messages are kept until one is")
	case u.State == uplink.StateConnected.String():
		line("uplink", "connected to %s since %s (%s)", u.Endpoint, clock(u.ConnectedSince), roundDuration(r.Time.Sub(u.ConnectedSince)))
	case u.State == uplink.StateWaiting.String():
		line("uplink", "DOWN: %s unreachable after %d attempt(s); next attempt in %s", u.Endpoint, u.Failures, roundDuration(max(0, u.NextRetry.Sub(r.Time))))
	default:
		line("uplink", "%s to %s", u.State, u.Endpoint)
	}
	if u.LastError != "" {
		line("", "last error %s (%s ago): %s", clock(u.LastErrorAt), roundDuration(r.Time.Sub(u.LastErrorAt)), u.LastError)
	}
	if u.Configured {
		line("", "forwarded %d, dead-lettered %d, released %d, in flight %d", u.Forwarded, u.DeadLettered, u.Released, u.InFlight)
	}

	d := r.Devices
	line("devices", "%d connected; %d connections since start, %d refused", d.Connected, d.ConnectionsTotal, d.Refused)
	line("", "received %d messages (%s), rejected %d, dropped %d", d.Messages, formatBytes(d.Bytes), d.Rejected, d.Dropped)

	for i, rt := range r.Routes {
		label := ""
		if i == 0 {
			label = "backlog"
		}
		line(label, "%s", routeLine(rt))
	}
	if r.DeadLetters.Messages > 0 {
		line("dead letters", "%d messages, %s", r.DeadLetters.Messages, formatBytes(r.DeadLetters.Bytes))
	}
	if l := r.Store.AckLatency; l.Count > 0 {
		line("durable in", "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d messages, last minutes; group commit)", l.P50ms, l.P99ms, l.MaxMs, l.Count)
	}
	if r.Store.DroppedTotal > 0 || r.Store.ExpiredTotal > 0 {
		line("", "ever dropped to make room %d, expired %d", r.Store.DroppedTotal, r.Store.ExpiredTotal)
	}

	rt := r.Rates
	line("rates", "in %.1f msg/s (%s/s), out %.1f msg/s, over the last %s", rt.InMessagesPerSecond,
		formatBytes(uint64(rt.InBytesPerSecond)), rt.OutMessagesPerSecond, roundDuration(time.Duration(rt.WindowSeconds*float64(time.Second))))
	switch {
	case rt.TimeToEmptySeconds == nil:
		line("", "backlog not shrinking")
	case *rt.TimeToEmptySeconds == 0:
		line("", "backlog empty")
	default:
		line("", "backlog empty in about %s at these rates", roundDuration(time.Duration(*rt.TimeToEmptySeconds*float64(time.Second))))
	}

	k := r.Disk
	if k.Error != "" {
		line("disk", "%s: %s", k.Dir, k.Error)
	} else {
		pct := 0.0
		if k.SizeBytes > 0 {
			pct = 100 * float64(k.FreeBytes) / float64(k.SizeBytes)
		}
		line("disk", "%s: %s free of %s (%.0f%%); store file %s", k.Dir, formatBytes(k.FreeBytes), formatBytes(k.SizeBytes), pct, formatBytes(uint64(k.StoreFileBytes)))
	}
	if k.WrittenToday != nil && k.WrittenSinceStart != nil {
		line("", "written to disk: %s today, %s since start", formatBytes(*k.WrittenToday), formatBytes(*k.WrittenSinceStart))
	}

	if len(r.Inputs) == 0 {
		line("inputs", "none")
	}
	for i, in := range r.Inputs {
		label := ""
		if i == 0 {
			label = "inputs"
		}
		last := "no sample yet"
		if !in.LastSample.IsZero() {
			last = "last sample " + roundDuration(r.Time.Sub(in.LastSample)).String() + " ago"
		}
		if in.LastError != "" {
			last += "; " + in.LastError
		}
		line(label, "%s (%s): %s, %d samples, %s", in.Name, in.Kind, in.State, in.Samples, last)
	}
}

// routeLine describes a route on one line: what configures it, then what it holds.
func routeLine(rt routeReport) string {
	var b strings.Builder
	how := []string{fmt.Sprintf("priority %d", rt.Priority), rt.WhenFull}
	if rt.MaxMessages > 0 {
		how = append(how, fmt.Sprintf("max %d messages", rt.MaxMessages))
	}
	if rt.MaxBytes > 0 {
		how = append(how, "max "+formatBytes(rt.MaxBytes))
	}
	if rt.Orphan {
		how = []string{"not configured: emptied into the configured routes, takes nothing new"}
	}
	fmt.Fprintf(&b, "%s (%s): %d messages, %s", rt.Name, strings.Join(how, ", "), rt.Messages, formatBytes(rt.Bytes))
	if !rt.OldestReceived.IsZero() {
		b.WriteString(", oldest " + roundDuration(time.Duration(rt.OldestAgeSeconds*float64(time.Second))).String())
	}
	if rt.Dropped > 0 {
		fmt.Fprintf(&b, ", dropped %d", rt.Dropped)
	}
	if rt.FullReason != "" {
		b.WriteString(", FULL (" + rt.FullReason + ")")
	}
	return b.String()
}

// clock writes a time of day, with the date when it is not today.
func clock(t time.Time) string {
	t = t.Local()
	if t.Format(time.DateOnly) == time.Now().Format(time.DateOnly) {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

// roundDuration keeps a duration readable: milliseconds below a second, tenths of
// seconds below a minute, seconds above.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// formatBytes writes n with a 1024-based unit.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
