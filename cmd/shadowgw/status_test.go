package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/store"
)

// checkFor polls cond until it is true or timeout passes.
func checkFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeConfig writes a configuration file and returns its path.
func writeConfig(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// get fetches http://addr/path and returns the status code and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// waitHTTP waits until the gateway's HTTP endpoint at addr answers /healthz.
func waitHTTP(t *testing.T, g *gateway, addr string) {
	t.Helper()
	checkFor(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the metrics endpoint on %s; log:\n%s", addr, g.log)
}

// statusOf fetches and decodes /status.
func statusOf(t *testing.T, addr string) statusReport {
	t.Helper()
	code, body := get(t, addr, "/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", code, body)
	}
	var r statusReport
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("GET /status: %v\n%s", err, body)
	}
	return r
}

// scrape fetches /metrics and parses it, failing the test if it is not valid text
// format with legacy (Prometheus 2) names.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the metric name with the given label pairs.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s%v missing", name, labels)
	return 0
}

// runStatus runs `shadowgw status` with args and returns its output and error.
func runStatus(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(binary, append([]string{"status"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String() + errOut.String(), err
}

// TestStatusEndpoints runs a gateway without an uplink, sends it messages and reads them
// back from /metrics, /status, `shadowgw status`, /healthz and /readyz.
func TestStatusEndpoints(t *testing.T) {
	dir := t.TempDir()
	maddr := freeAddr(t)
	conf := writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[metrics]\nlisten = "+maddr+"\n")
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"))
	waitHTTP(t, g, maddr)

	const n, size = 10, 100
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := &device{id: "dev-status"}
	d.send(ctx, g.addr, "status", 0, n, size, 5)
	if d.err != nil || len(d.accepted) != n {
		t.Fatalf("device: %d of %d accepted, err %v", len(d.accepted), n, d.err)
	}

	for _, c := range []struct {
		path, body string
		code       int
	}{{"/healthz", "ok\n", 200}, {"/readyz", "ready\n", 200}} {
		if code, body := get(t, maddr, c.path); code != c.code || body != c.body {
			t.Errorf("GET %s = %d %q, want %d %q", c.path, code, body, c.code, c.body)
		}
	}
	if code, _ := get(t, maddr, "/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}

	// The device has closed its connection; the gateway notices a moment later.
	checkFor(t, 10*time.Second, func() bool { return value(t, scrape(t, maddr), "shadowgw_edge_connections") == 0 },
		"the device's connection still counted")
	fams := scrape(t, maddr)
	checkNames(t, fams)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"shadowgw_edge_messages_received_total", nil, n},
		{"shadowgw_edge_connections", nil, 0},
		{"shadowgw_store_messages", []string{"route", "default"}, n},
		{"shadowgw_store_messages_dropped_total", []string{"route", "default"}, 0},
		{"shadowgw_store_full", []string{"route", "default"}, 0},
		{"shadowgw_store_recovered", nil, 0},
		{"shadowgw_store_commit_errors_total", nil, 0},
		{"shadowgw_ready", nil, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(t, fams, "shadowgw_edge_connections_total"); got < 1 {
		t.Errorf("shadowgw_edge_connections_total = %v, want at least 1", got) // the harness's probe counts too
	}
	received := value(t, fams, "shadowgw_edge_received_bytes_total")
	if stored := value(t, fams, "shadowgw_store_bytes", "route", "default"); received < n*size || stored != received {
		t.Errorf("bytes received %v, stored %v; want equal and at least %d", received, stored, n*size)
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{{"shadowgw_store_oldest_message_age_seconds", []string{"route", "default"}}, {"shadowgw_disk_free_bytes", nil}, {"shadowgw_store_file_bytes", nil},
		{"shadowgw_store_ack_latency_seconds", []string{"quantile", "0.5"}}, {"shadowgw_store_ack_latency_seconds", []string{"quantile", "0.99"}}} {
		if got := value(t, fams, c.name, c.labels...); got <= 0 {
			t.Errorf("%s = %v, want > 0", c.name, got)
		}
	}
	if _, ok := fams["process_resident_memory_bytes"]; !ok {
		t.Error("process metrics missing")
	}
	if _, ok := fams["shadowgw_uplink_up"]; ok {
		t.Error("uplink metrics without an uplink")
	}

	r := statusOf(t, maddr)
	if !r.Ready || r.Uplink.Configured || r.Uplink.State != "none" || r.Devices.Messages != n || r.Devices.ConnectionsTotal < 1 {
		t.Errorf("status: ready %v, uplink %+v, devices %+v", r.Ready, r.Uplink, r.Devices)
	}
	if len(r.Routes) != 1 || r.Routes[0].Name != "default" || r.Routes[0].Messages != n || r.Routes[0].Bytes != r.Devices.Bytes ||
		r.Routes[0].OldestAgeSeconds <= 0 || r.Routes[0].OldestReceived.After(r.Time) {
		t.Errorf("status routes = %+v, want %d messages of %d bytes", r.Routes, n, r.Devices.Bytes)
	}
	wantRoute := routeReport{Name: "default", Priority: 0, WhenFull: "backpressure", Messages: n, Bytes: r.Devices.Bytes}
	if len(r.Routes) == 1 {
		got := r.Routes[0]
		got.OldestReceived, got.OldestAgeSeconds = time.Time{}, 0
		if got != wantRoute {
			t.Errorf("status route = %+v, want %+v", got, wantRoute)
		}
	}
	if want := (storeReport{Messages: n, Bytes: r.Devices.Bytes}); r.Store.Messages != want.Messages || r.Store.Bytes != want.Bytes ||
		r.Store.FullReason != "" || r.Store.Recovered != nil || r.Store.Dropped != 0 || len(r.Problems) != 0 {
		t.Errorf("status store = %+v, problems %q; want %+v and no problems", r.Store, r.Problems, want)
	}
	if l := r.Store.AckLatency; l.Count != n || l.P50ms <= 0 || l.P50ms > l.P99ms || l.P99ms > l.MaxMs {
		t.Errorf("status ack latency = %+v, want %d messages measured, 0 < p50 <= p99 <= max", l, n)
	}
	if r.Rates.TimeToEmptySeconds != nil {
		t.Errorf("time to empty = %v without an uplink, want none", *r.Rates.TimeToEmptySeconds)
	}
	if r.Disk.FreeBytes == 0 || r.Disk.SizeBytes < r.Disk.FreeBytes || r.Disk.StoreFileBytes <= 0 || !filepath.IsAbs(r.Disk.Dir) {
		t.Errorf("status disk = %+v", r.Disk)
	}
	if r.Disk.WrittenSinceStart != nil && (r.Disk.WrittenToday == nil || *r.Disk.WrittenToday > *r.Disk.WrittenSinceStart) {
		t.Errorf("written today %v, since start %v", r.Disk.WrittenToday, r.Disk.WrittenSinceStart)
	}
	if r.PID != g.cmd.Process.Pid || r.Inputs == nil {
		t.Errorf("status pid %d (want %d), inputs %v", r.PID, g.cmd.Process.Pid, r.Inputs)
	}

	// The command, by address and through the configuration file.
	for _, args := range [][]string{{"--addr", maddr}, {"--config", conf}} {
		out, err := runStatus(t, args...)
		if err != nil {
			t.Fatalf("shadowgw status %v: %v\n%s", args, err, out)
		}
		for _, want := range []string{", ready\n", "uplink       none configured", "devices      0 connected; ",
			fmt.Sprintf("backlog      default (priority 0, backpressure): %d messages, %s, oldest ", n, formatBytes(r.Devices.Bytes)), "backlog not shrinking", "disk         " + r.Disk.Dir} {
			if !strings.Contains(out, want) {
				t.Errorf("shadowgw status %v: output lacks %q:\n%s", args, want, out)
			}
		}
	}
	out, err := runStatus(t, "--addr", maddr, "--json")
	var jr statusReport
	if err != nil || json.Unmarshal([]byte(out), &jr) != nil || jr.Devices.Messages != n {
		t.Errorf("shadowgw status --json: %v\n%s", err, out)
	}

	// Turned off, or nothing there: a clear error.
	off := writeConfig(t, filepath.Join(dir, "off.conf"), "[metrics]\nlisten =\n")
	if out, err := runStatus(t, "--config", off); err == nil || !strings.Contains(out, "[metrics] listen is empty in "+off) {
		t.Errorf("shadowgw status with metrics off: %v\n%s", err, out)
	}
	if out, err := runStatus(t, "--addr", freeAddr(t)); err == nil || !strings.Contains(out, "no gateway status at") {
		t.Errorf("shadowgw status without a gateway: %v\n%s", err, out)
	}
	g.stop()
}

// checkNames checks the Prometheus naming conventions on the gateway's own metrics:
// the shadowgw_ prefix, counters and only counters ending in _total, help text.
func checkNames(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	own := 0
	for name, f := range fams {
		if !strings.HasPrefix(name, "shadowgw_") {
			continue
		}
		own++
		isCounter := f.GetType() == dto.MetricType_COUNTER
		if strings.HasSuffix(name, "_total") != isCounter {
			t.Errorf("%s: type %v; only counters end in _total", name, f.GetType())
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no help", name)
		}
		for _, bad := range []string{"_ms", "_kb", "_mb", "_milliseconds", "_count_"} {
			if strings.Contains(name, bad) {
				t.Errorf("%s: use base units (seconds, bytes)", name)
			}
		}
	}
	if own < 15 {
		t.Errorf("%d shadowgw_ metrics, want at least 15", own)
	}
}

// TestStatusUplinkDown: an uplink to a port where nothing listens shows as down, with
// its error and next attempt, in /status, /metrics and `shadowgw status`.
func TestStatusUplinkDown(t *testing.T) {
	dir := t.TempDir()
	maddr, cloud := freeAddr(t), freeAddr(t)
	pw := writeConfig(t, filepath.Join(dir, "uplink.password"), "secret\n")
	conf := writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[metrics]\nlisten = "+maddr+"\n[uplink]\nurl = amqps://"+cloud+
		"\nuser = gw\npassword-file = "+pw+"\nreconnect-min = 50ms\nreconnect-max = 1m\n")
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"))
	waitHTTP(t, g, maddr)
	checkFor(t, 10*time.Second, func() bool { return statusOf(t, maddr).Uplink.Failures >= 2 }, "two failed uplink attempts")

	r := statusOf(t, maddr)
	u := r.Uplink
	if !u.Configured || u.Endpoint != cloud || u.LastError == "" || u.LastErrorAt.IsZero() {
		t.Errorf("uplink status = %+v", u)
	}
	if u.State == "waiting" && !u.NextRetry.After(u.LastErrorAt) {
		t.Errorf("waiting uplink: next retry %v not after the last error %v", u.NextRetry, u.LastErrorAt)
	}
	if !r.Ready {
		t.Errorf("not ready with the uplink down: %s (buffering is the job)", r.NotReady)
	}
	fams := scrape(t, maddr)
	checkNames(t, fams)
	if got := value(t, fams, "shadowgw_uplink_up"); got != 0 {
		t.Errorf("shadowgw_uplink_up = %v, want 0", got)
	}
	if got := value(t, fams, "shadowgw_uplink_connection_failures"); got < 2 {
		t.Errorf("shadowgw_uplink_connection_failures = %v, want at least 2", got)
	}
	sum := 0.0
	for _, st := range uplinkStates {
		sum += value(t, fams, "shadowgw_uplink_state", "state", st.String())
	}
	if sum != 1 {
		t.Errorf("shadowgw_uplink_state sums to %v, want 1", sum)
	}
	checkFor(t, 5*time.Second, func() bool {
		out, _ := runStatus(t, "--addr", maddr)
		return strings.Contains(out, "uplink       DOWN: "+cloud+" unreachable after")
	}, "`shadowgw status` to show the uplink down")
	out, _ := runStatus(t, "--addr", maddr)
	if !strings.Contains(out, "last error") || !strings.Contains(out, "connection refused") {
		t.Errorf("shadowgw status lacks the last error:\n%s", out)
	}
	g.stop()
}

// TestReload sends SIGHUP to a gateway whose configuration file changed: the log level
// and the device credentials change; other changes wait for a restart; a bad file
// changes nothing and the log says why.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	hashA, err := credential.Hash("password a")
	if err != nil {
		t.Fatal(err)
	}
	hashB, err := credential.Hash("password b")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "shadowgw.conf")
	text := func(level, listen string, devices ...string) string {
		s := "[edge]\nallow-anonymous = false\nlisten = " + listen + "\n[log]\nlevel = " + level + "\n[metrics]\nlisten =\n"
		for i := 0; i+1 < len(devices); i += 2 {
			s += fmt.Sprintf("[device %q]\npassword-hash = %s\n", devices[i], devices[i+1])
		}
		return s
	}
	writeConfig(t, conf, text("info", "127.0.0.1:1", "dev-a", hashA))
	// --listen overrides the file, before and after the reload.
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"))
	connects := func(user, password string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := amqp.Dial(ctx, "amqp://"+g.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain(user, password)})
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	reloaded := func(words ...string) {
		t.Helper()
		before := g.log.count("component=config")
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, func() bool { return g.log.count("component=config") > before }, "a reload line; log:\n%s", g.log)
		if g.log.count(words...) == 0 {
			t.Fatalf("no log line with %q after SIGHUP:\n%s", words, g.log)
		}
	}
	if !connects("dev-a", "password a") || connects("dev-b", "password b") {
		t.Fatal("credentials before the reload not as configured")
	}

	// Nothing changed.
	reloaded("level=INFO", "configuration reloaded: nothing changed")

	// Log level and devices change; the listen address in the file changes too but
	// --listen still wins, so the edge section has no change.
	writeConfig(t, conf, text("debug", "127.0.0.1:2", "dev-b", hashB))
	reloaded("level=INFO", "configuration reloaded", `applied="[log] level, [device \"dev-b\"], [device \"dev-a\"]"`)
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	checkFor(t, 5*time.Second, func() bool { return g.log.count("level=DEBUG", "connection closed before the protocol header") > 0 },
		"a debug line after the level changed to debug; log:\n%s", g.log)
	if connects("dev-a", "password a") || !connects("dev-b", "password b") {
		t.Error("device credentials not swapped by the reload")
	}

	// A bad file: an error naming file and line; everything stays.
	writeConfig(t, conf, text("loud", "127.0.0.1:2", "dev-a", hashA))
	reloaded("level=ERROR", "configuration reload failed; the running configuration stays", conf+`:5: [log] level: want one of debug, info, warn, error, got \"loud\"`)
	if connects("dev-a", "password a") || !connects("dev-b", "password b") {
		t.Error("a failed reload changed the device credentials")
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	reloaded("level=ERROR", "configuration reload failed", "no such file or directory")

	// A change that needs a restart is named, and stays named.
	writeConfig(t, conf, text("debug", "127.0.0.1:2", "dev-b", hashB)+"[edge]\ncredit = 7\n")
	reloaded("level=WARN", "some changes need a restart", `needs_restart="[edge] credit"`)

	// A device added with targets connects at once, limited to its targets.
	writeConfig(t, conf, text("debug", "127.0.0.1:2", "dev-b", hashB)+"[edge]\ncredit = 7\n"+
		"[device \"dev-c\"]\npassword-hash = "+hashA+"\ntargets = only/here\n")
	reloaded("level=WARN", `applied="[device \"dev-c\"]"`, `needs_restart="[edge] credit"`)
	if !connects("dev-c", "password a") {
		t.Error("a device added by a reload cannot connect")
	}
	if strings.Contains(g.log.String(), "pbkdf2") {
		t.Errorf("the log shows a password hash:\n%s", g.log)
	}
	g.stop()
}

// TestMonitorInProcess runs the monitor against an open store and edge server without
// a gateway around them: the inputs hook, readiness after a store failure and close,
// and that it leaves no goroutine behind.
func TestMonitorInProcess(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "data", storeFile), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p := parts{Config: config.Default(), Store: st, Edge: edge.New(edge.Config{}, storeSink{st}, nil), Log: slog.New(slog.DiscardHandler),
		Inputs: &inputReport{}}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runMonitor(ctx, addr, p) }()
	checkFor(t, 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "the monitor to listen")

	p.Inputs.set(func() []inputStatus {
		return []inputStatus{{Name: "room", Kind: "bme280", State: "ok", Samples: 3, LastSample: time.Now()}}
	})
	r := statusOf(t, addr)
	p.Inputs.set(nil)
	if len(r.Inputs) != 1 || r.Inputs[0].Name != "room" || r.Inputs[0].Samples != 3 {
		t.Errorf("inputs = %+v, want the reported one", r.Inputs)
	}
	var b bytes.Buffer
	printStatus(&b, r)
	if !strings.Contains(b.String(), "inputs       room (bme280): ok, 3 samples, last sample") {
		t.Errorf("printed status lacks the input:\n%s", b.String())
	}
	if got := statusOf(t, addr).Inputs; len(got) != 0 {
		t.Errorf("inputs after reportInputs(nil) = %+v", got)
	}

	st.Close()
	if code, body := get(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store is closed") {
		t.Errorf("GET /readyz with the store closed = %d %q", code, body)
	}
	if code, _ := get(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runMonitor: %v", err)
	}
	checkFor(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before }, "goroutines to end (%d, were %d)", runtime.NumGoroutine(), before)
}

func TestMonitorPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logged bytes.Buffer
	p := parts{Log: slog.New(slog.NewTextHandler(&logged, nil))}
	// The listener is opened before anything is read from p's components.
	st, err := store.Open(filepath.Join(t.TempDir(), storeFile), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p.Store, p.Edge = st, edge.New(edge.Config{}, storeSink{st}, nil)
	if err := runMonitor(context.Background(), ln.Addr().String(), p); err != nil {
		t.Errorf("runMonitor on a taken port = %v, want nil (the gateway runs on)", err)
	}
	if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), "address already in use") {
		t.Errorf("log = %q, want an error line naming the cause", logged.String())
	}
}

func TestStoreHealth(t *testing.T) {
	steps := []struct {
		name              string
		commits, failures uint64
		want              bool
	}{
		{"idle", 0, 0, false},
		{"commits", 5, 0, false},
		{"a failure", 5, 1, true},
		{"still nothing", 5, 1, true},
		{"a failure and a success", 6, 2, true},
		{"successes only", 8, 2, false},
		{"idle again", 8, 2, false},
	}
	var h storeHealth
	for _, s := range steps {
		if got := h.observe(store.Stats{Commits: s.commits, CommitErrors: s.failures}); got != s.want {
			t.Errorf("%s: failing = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestRates(t *testing.T) {
	t0 := time.Now()
	ptr := func(f float64) *float64 { return &f }
	tests := []struct {
		name     string
		from, to sample
		backlog  uint64
		want     rateReport
	}{
		{"no time", sample{at: t0}, sample{at: t0, in: 5}, 5, rateReport{}},
		{"empty", sample{at: t0}, sample{at: t0.Add(10 * time.Second), in: 100, inBytes: 1000, out: 100}, 0,
			rateReport{WindowSeconds: 10, InMessagesPerSecond: 10, InBytesPerSecond: 100, OutMessagesPerSecond: 10, TimeToEmptySeconds: ptr(0)}},
		{"draining", sample{at: t0}, sample{at: t0.Add(10 * time.Second), in: 100, out: 300}, 400,
			rateReport{WindowSeconds: 10, InMessagesPerSecond: 10, OutMessagesPerSecond: 30, TimeToEmptySeconds: ptr(20)}},
		{"growing", sample{at: t0}, sample{at: t0.Add(10 * time.Second), in: 300, out: 100}, 400,
			rateReport{WindowSeconds: 10, InMessagesPerSecond: 30, OutMessagesPerSecond: 10}},
	}
	for _, tt := range tests {
		got := rates(tt.from, tt.to, tt.backlog)
		gotETA, wantETA := got.TimeToEmptySeconds, tt.want.TimeToEmptySeconds
		got.TimeToEmptySeconds, tt.want.TimeToEmptySeconds = nil, nil
		if got != tt.want || (gotETA == nil) != (wantETA == nil) || gotETA != nil && *gotETA != *wantETA {
			t.Errorf("%s: rates = %+v (eta %v), want %+v (eta %v)", tt.name, got, gotETA, tt.want, wantETA)
		}
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9464": "127.0.0.1:9464",
		":9464":          "127.0.0.1:9464",
		"0.0.0.0:9464":   "127.0.0.1:9464",
		"[::]:9464":      "[::1]:9464",
		"localhost:1":    "localhost:1",
		"nonsense":       "nonsense",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestMonitorRoutes reads a store with several routes through the monitor: each route's
// configuration and counters in /status and `shadowgw status`, full routes as problems,
// the per-route metrics, each message's route in the queue listing, and a route that
// is no longer configured.
func TestMonitorRoutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", storeFile)
	routes := []store.Route{
		{Name: "alarms", Addresses: []string{"alarms/*"}, Priority: 10, WhenFull: store.Backpressure},
		{Name: "telemetry", Addresses: []string{"telemetry"}, MaxMessages: 3, WhenFull: store.DropOldest},
		{Name: "bulk", Addresses: []string{"bulk"}, MaxMessages: 2, MaxBytes: 1 << 20, WhenFull: store.Backpressure},
	}
	st, err := store.Open(path, store.Options{NoSync: true, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	ctx := context.Background()
	appendN := func(address string, n, size int) {
		t.Helper()
		for range n {
			if err := st.Append(ctx, &store.Message{Address: address, Source: "dev", Payload: make([]byte, size)}); err != nil {
				t.Fatalf("append to %s: %v", address, err)
			}
		}
	}
	appendN("alarms/fire", 2, 100)
	appendN("telemetry", 5, 50) // 3 kept, 2 dropped
	appendN("bulk", 2, 10)      // full
	appendN("elsewhere", 1, 7)

	m := newMonitor(parts{Config: config.Default(), Store: st, Edge: edge.New(edge.Config{}, storeSink{st}, nil), Log: slog.New(slog.DiscardHandler)}, time.Now)
	srv := httptest.NewServer(m.handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	r := statusOf(t, addr)
	want := []routeReport{
		{Name: "alarms", Priority: 10, WhenFull: "backpressure", Messages: 2, Bytes: 200},
		{Name: "bulk", WhenFull: "backpressure", MaxBytes: 1 << 20, MaxMessages: 2, Messages: 2, Bytes: 20, FullReason: "route max-messages"},
		{Name: "default", WhenFull: "backpressure", Messages: 1, Bytes: 7},
		{Name: "telemetry", WhenFull: "drop-oldest", MaxMessages: 3, Messages: 3, Bytes: 150, Dropped: 2},
	}
	if len(r.Routes) != len(want) {
		t.Fatalf("status routes = %+v, want %d", r.Routes, len(want))
	}
	for i, got := range r.Routes {
		if got.OldestReceived.IsZero() || got.OldestReceived.After(r.Time) || got.OldestAgeSeconds <= 0 {
			t.Errorf("route %s: oldest %v, age %vs", got.Name, got.OldestReceived, got.OldestAgeSeconds)
		}
		got.OldestReceived, got.OldestAgeSeconds = time.Time{}, 0
		if got != want[i] {
			t.Errorf("status route %d = %+v, want %+v", i, got, want[i])
		}
	}
	if s := r.Store; s.Messages != 8 || s.Bytes != 377 || s.Dropped != 2 || s.FullReason != "" || s.Recovered != nil {
		t.Errorf("status store = %+v, want 8 messages, 377 bytes, 2 dropped, not full", s)
	}
	wantProblems := []string{"route bulk is full (route max-messages): devices sending to it get no credit"}
	if !slices.Equal(r.Problems, wantProblems) {
		t.Errorf("problems = %q, want %q", r.Problems, wantProblems)
	}

	var b bytes.Buffer
	printStatus(&b, r)
	for _, line := range []string{
		"PROBLEM      route bulk is full (route max-messages): devices sending to it get no credit\n",
		"backlog      alarms (priority 10, backpressure): 2 messages, 200 B, oldest ",
		"             bulk (priority 0, backpressure, max 2 messages, max 1.0 MiB): 2 messages, 20 B, oldest ",
		", FULL (route max-messages)\n",
		"             default (priority 0, backpressure): 1 messages, 7 B, oldest ",
		"             telemetry (priority 0, drop-oldest, max 3 messages): 3 messages, 150 B, oldest ",
		", dropped 2\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("printed status lacks %q:\n%s", line, b.String())
		}
	}

	fams := scrape(t, addr)
	checkNames(t, fams)
	for _, c := range []struct {
		name, route string
		want        float64
	}{
		{"shadowgw_store_messages", "alarms", 2}, {"shadowgw_store_messages", "telemetry", 3}, {"shadowgw_store_messages", "default", 1},
		{"shadowgw_store_bytes", "telemetry", 150}, {"shadowgw_store_bytes", "bulk", 20},
		{"shadowgw_store_messages_dropped_total", "telemetry", 2}, {"shadowgw_store_messages_dropped_total", "alarms", 0},
		{"shadowgw_store_full", "bulk", 1}, {"shadowgw_store_full", "telemetry", 0}, {"shadowgw_store_full", "alarms", 0},
	} {
		if got := value(t, fams, c.name, "route", c.route); got != c.want {
			t.Errorf("%s{route=%q} = %v, want %v", c.name, c.route, got, c.want)
		}
	}
	if got := value(t, fams, "shadowgw_store_oldest_message_age_seconds", "route", "bulk"); got <= 0 {
		t.Errorf("oldest age of bulk = %v, want > 0", got)
	}
	if got := value(t, fams, "shadowgw_store_recovered"); got != 0 {
		t.Errorf("shadowgw_store_recovered = %v, want 0", got)
	}

	// The queue listing names each message's route, through the daemon's API and
	// from the file.
	daemon := daemonQueue{base: srv.URL, client: srv.Client()}
	msgs, err := daemon.list(false, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mi := range msgs {
		got = append(got, mi.Route+" "+mi.Address)
	}
	wantMsgs := []string{"alarms alarms/fire", "alarms alarms/fire", "telemetry telemetry", "telemetry telemetry", "telemetry telemetry",
		"bulk bulk", "bulk bulk", "default elsewhere"}
	if !slices.Equal(got, wantMsgs) {
		t.Errorf("queue list (daemon) = %q, want %q", got, wantMsgs)
	}
	b.Reset()
	if err := printQueue(&b, msgs, false, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 9 || !strings.Contains(lines[0], "SIZE  ROUTE      ADDRESS      SOURCE") ||
		!strings.Contains(lines[3], " 50    telemetry  telemetry    dev ") || !strings.Contains(lines[8], " 7     default    elsewhere    dev ") {
		t.Errorf("queue list:\n%s", b.String())
	}
	b.Reset()
	if err := printQueue(&b, msgs[:1], false, true); err != nil || !strings.Contains(b.String(), `"route": "alarms"`) {
		t.Errorf("queue list --json: %v\n%s", err, b.String())
	}

	// Reopened without bulk, the store moves bulk's messages to the default route,
	// where they keep their order, and shows bulk as an empty orphan.
	srv.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(path, store.Options{NoSync: true, Routes: routes[:2]}); err != nil {
		t.Fatal(err)
	}
	fileMsgs, err := fileQueue{st}.list(false, 0, 100)
	if err != nil || len(fileMsgs) != len(msgs) || fileMsgs[5].Address != "bulk" || fileMsgs[5].Route != "default" || fileMsgs[5].Seq != msgs[5].Seq {
		t.Errorf("queue list (file) = %+v, %v; want bulk's messages on route default, same seqs", fileMsgs, err)
	}
	m = newMonitor(parts{Config: config.Default(), Store: st, Edge: edge.New(edge.Config{}, storeSink{st}, nil), Log: slog.New(slog.DiscardHandler)}, time.Now)
	r = m.status()
	i := slices.IndexFunc(r.Routes, func(rt routeReport) bool { return rt.Name == "bulk" })
	if i < 0 || !r.Routes[i].Orphan || r.Routes[i].Messages != 0 || r.Routes[i].FullReason != "" || len(r.Problems) != 0 {
		t.Fatalf("status after bulk's section was removed: routes %+v, problems %q", r.Routes, r.Problems)
	}
	if line := routeLine(r.Routes[i]); !strings.HasPrefix(line, "bulk (not configured: emptied into the configured routes, takes nothing new): 0 messages") {
		t.Errorf("orphan route line = %q", line)
	}
}

// TestStatusRecoveredStore starts the gateway on a store file that is not a store: it
// moves the file aside, starts a fresh one, and says so loudly in /status, `shadowgw
// status`, /healthz and the metrics.
func TestStatusRecoveredStore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, storeFile), bytes.Repeat([]byte("\xa5\x5a"), 50), 0o600); err != nil {
		t.Fatal(err)
	}
	maddr := freeAddr(t)
	conf := writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[metrics]\nlisten = "+maddr+"\n")
	g := startGateway(t, "--config", conf, "--data", data)
	waitHTTP(t, g, maddr)

	r := statusOf(t, maddr)
	rec := r.Store.Recovered
	if rec == nil || !strings.HasPrefix(rec.MovedTo, filepath.Join(data, storeFile)+".corrupt-") || rec.Cause == "" || rec.Salvaged != 0 || rec.Lost != -1 {
		t.Fatalf("status store = %+v, recovered %+v; want the damaged file moved aside", r.Store, rec)
	}
	if _, err := os.Stat(rec.MovedTo); err != nil {
		t.Errorf("the damaged file is not where the status says: %v", err)
	}
	wantProblem := "the store file was damaged (" + rec.Cause + ") and replaced by a fresh one at " + rec.At.Format(time.RFC3339) +
		": 0 messages and dead letters salvaged, an unknown number lost; the damaged file was moved to " + rec.MovedTo
	if !slices.Equal(r.Problems, []string{wantProblem}) {
		t.Errorf("problems = %q, want %q", r.Problems, wantProblem)
	}
	if !r.Ready {
		t.Errorf("not ready after a recovery: %s (the fresh store works)", r.NotReady)
	}
	out, err := runStatus(t, "--addr", maddr)
	if err != nil || !strings.Contains(out, "\nPROBLEM      "+wantProblem+"\n") {
		t.Errorf("shadowgw status: %v, want the problem on the second line:\n%s", err, out)
	}
	if code, body := get(t, maddr, "/healthz"); code != http.StatusOK || body != "ok\nproblem: "+wantProblem+"\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if got := value(t, scrape(t, maddr), "shadowgw_store_recovered"); got != 1 {
		t.Errorf("shadowgw_store_recovered = %v, want 1", got)
	}
	g.stop()
}
