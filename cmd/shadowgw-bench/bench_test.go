package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// gatewayBin is the shadowgw binary built once for these tests.
var gatewayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shadowgw-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewayBin = filepath.Join(dir, "shadowgw")
	build := exec.Command("go", "build", "-o", gatewayBin, "github.com/shadowgw/shadowgw/cmd/shadowgw")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building shadowgw: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// bench runs the tool with args and --json and returns its report and exit code.
func bench(t *testing.T, args ...string) (*report, int) {
	t.Helper()
	t.Logf("shadowgw-bench %s", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := realMain(ctx, append([]string{"--json"}, args...), &out, &errOut)
	if code != 0 && code != 3 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	var text bytes.Buffer
	r.print(&text)
	t.Logf("\n%s", text.String())
	return &r, code
}

// spawnArgs returns the flags that make the tool start a gateway without an uplink on
// addr, followed by extra gateway flags.
func spawnArgs(t *testing.T, addr string, extra ...string) []string {
	return append([]string{"--spawn", gatewayBin, "--addr", addr, "--"},
		append([]string{"run", "--listen", addr, "--data", filepath.Join(t.TempDir(), "data"), "--metrics", freeAddr(t)}, extra...)...)
}

func TestIngest(t *testing.T) {
	addr := freeAddr(t)
	const devices, per = 4, 200
	r, code := bench(t, append([]string{"--devices", strconv.Itoa(devices), "--messages", strconv.Itoa(per), "--size", "100", "--window", "20"},
		spawnArgs(t, addr)...)...)
	if code != 0 || r.Sent != devices*per || r.Accepted != devices*per || r.Refused != 0 || len(r.Errors) > 0 {
		t.Errorf("sent %d, accepted %d, refused %d, errors %v; want %d accepted", r.Sent, r.Accepted, r.Refused, r.Errors, devices*per)
	}
	if r.AckLatency == nil || r.AckLatency.Samples != devices*per || r.AckLatency.P50 > r.AckLatency.Max {
		t.Errorf("ack latency = %+v", r.AckLatency)
	}
	if g := r.Gateway; g == nil || g.RSSBytes == 0 || g.PeakRSSBytes < g.RSSBytes || g.CPUSeconds < 0 {
		t.Errorf("gateway = %+v", g)
	}
}

func TestIngestSettledAtRate(t *testing.T) {
	addr := freeAddr(t)
	r, code := bench(t, append([]string{"--devices", "2", "--messages", "50", "--settled", "--rate", "200"}, spawnArgs(t, addr)...)...)
	if code != 0 || r.Sent != 100 || r.AckLatency != nil {
		t.Errorf("sent %d, ack latency %v", r.Sent, r.AckLatency)
	}
	// 50 messages per device at 100/s each take about half a second.
	if r.SendSeconds < 0.4 {
		t.Errorf("sending took %.2fs, want about 0.5s at the target rate", r.SendSeconds)
	}
}

func TestIdle(t *testing.T) {
	addr := freeAddr(t)
	r, code := bench(t, append([]string{"--idle", "20", "--hold", "200ms"}, spawnArgs(t, addr)...)...)
	if code != 0 || r.Idle == nil || r.Idle.Connections != 20 || r.Idle.Failed != 0 || r.Idle.RSSAfterBytes == 0 {
		t.Errorf("idle = %+v", r.Idle)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--devices", "0"},
		{"--window", "0"},
		{"--messages", "0"},
		{"--cloud-url", "amqps://x"},
		{"--user", "u"},
		{"--gateway-pid", "1", "--spawn", "x"},
		{"run", "--listen", "x"},
		{"--nope"},
	} {
		var out, errOut bytes.Buffer
		if code := realMain(context.Background(), args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errOut.String())
		}
	}
}

func TestSpawnFails(t *testing.T) {
	addr := freeAddr(t)
	var out, errOut bytes.Buffer
	code := realMain(context.Background(), []string{"--spawn", gatewayBin, "--addr", addr, "--", "run", "--listen", "nope"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "exited at start") || !strings.Contains(errOut.String(), `[edge] listen`) {
		t.Errorf("exit %d, stderr:\n%s", code, errOut.String())
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(101-i)*time.Millisecond)
	}
	l := newLatency(ds)
	if l.Samples != 100 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("latency of 1..100ms = %+v", l)
	}
	if one := newLatency([]time.Duration{time.Second}); one.P50 != 1000 || one.P99 != 1000 {
		t.Errorf("latency of one sample = %+v", one)
	}
	if newLatency(nil) != nil {
		t.Error("latency of nothing is not nil")
	}
}

func TestReadProc(t *testing.T) {
	s := readProc(os.Getpid())
	if !s.ok || s.rss == 0 || s.peakRSS < s.rss {
		t.Errorf("readProc(self) = %+v", s)
	}
	if readProc(0).ok || readProc(1<<30).ok {
		t.Error("readProc of no process is ok")
	}
}

// TestCloud measures the whole path against a real RabbitMQ: devices → the gateway with
// its TLS uplink → the broker → the tool's consumer. SHADOWGW_BENCH_MESSAGES sets the
// messages per device (default 500), SHADOWGW_BENCH_RATE a total rate (default: as fast
// as possible).
func TestCloud(t *testing.T) {
	if testing.Short() {
		t.Skip("starts RabbitMQ")
	}
	per := 500
	if s := os.Getenv("SHADOWGW_BENCH_MESSAGES"); s != "" {
		var err error
		if per, err = strconv.Atoi(s); err != nil {
			t.Fatalf("SHADOWGW_BENCH_MESSAGES: %v", err)
		}
	}
	rate := os.Getenv("SHADOWGW_BENCH_RATE")
	if rate == "" {
		rate = "0"
	}
	b := cloudtest.StartRabbitMQ(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "shadowgw.conf")
	if err := os.WriteFile(conf, []byte("[uplink]\naddress-prefix = /queue/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	const devices = 4
	r, code := bench(t, append([]string{"--devices", strconv.Itoa(devices), "--messages", strconv.Itoa(per), "--size", "256", "--rate", rate,
		"--address", "bench", "--cloud-url", b.URL, "--cloud-ca", b.CAFile, "--cloud-user", b.User, "--cloud-password-file", pw,
		"--cloud-address", "/queue/bench"},
		spawnArgs(t, addr, "--config", conf, "--uplink", b.URL, "--uplink-ca", b.CAFile, "--uplink-user", b.User, "--uplink-password-file", pw)...)...)
	if code != 0 || r.Accepted != devices*per || r.Cloud == nil {
		t.Fatalf("exit %d, accepted %d of %d, cloud %+v, errors %v", code, r.Accepted, devices*per, r.Cloud, r.Errors)
	}
	c := r.Cloud
	if c.Arrived != devices*per || c.Lost != 0 || c.Duplicated != 0 || c.Error != "" {
		t.Errorf("cloud: %d arrived, %d lost, %d duplicated, error %q; want all %d once", c.Arrived, c.Lost, c.Duplicated, c.Error, devices*per)
	}
	if c.Latency == nil || c.Latency.Samples != devices*per || c.Latency.Max < c.Latency.P50 {
		t.Errorf("cloud latency = %+v", c.Latency)
	}
	if r.Gateway == nil || r.Gateway.RSSBytes == 0 {
		t.Errorf("gateway = %+v", r.Gateway)
	}
}
