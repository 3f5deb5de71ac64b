package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// EnvMeasureDirect, set to 1, runs TestMeasureDirect: the numbers of issue 14's closing
// note. It measures, it asserts nothing about speed.
const EnvMeasureDirect = "SHADOWGW_MEASURE_DIRECT"

// startDaemon starts a gateway with conf and args on a free address, waits until it
// listens, and stops it (SIGKILL by PID) when the test ends.
func startDaemon(t *testing.T, conf string, args ...string) (addr string, pid int) {
	t.Helper()
	addr = freeAddr(t)
	dir := t.TempDir()
	confPath := filepath.Join(dir, "shadowgw.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gatewayBin, append([]string{"run", "--listen", addr, "--data", filepath.Join(dir, "data"), "--config", confPath}, args...)...)
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMeasureDirect measures direct and stored routes through RabbitMQ over TLS and
// through the Proton test server, and devices sending straight to RabbitMQ, in
// alternation, and logs a table.
func TestMeasureDirect(t *testing.T) {
	if os.Getenv(EnvMeasureDirect) != "1" {
		t.Skipf("set %s=1 to measure direct routes", EnvMeasureDirect)
	}
	b := cloudtest.StartRabbitMQ(t)
	s := cloudtest.StartProton(t)
	pw := b.WritePasswordFile(t)
	routes := "[route \"direct\"]\naddresses = bench-direct\nmode = direct\n"
	rabbit, rabbitPID := startDaemon(t, "[uplink]\naddress-prefix = /queue/\n[metrics]\nlisten =\n"+routes,
		"--uplink", b.URL, "--uplink-ca", b.CAFile, "--uplink-user", b.User, "--uplink-password-file", pw)
	proton, protonPID := startDaemon(t, "[metrics]\nlisten =\n"+routes, "--uplink", s.URL, "--uplink-ca", s.CAFile)

	devices, per := "4", "2500"
	if v := os.Getenv("SHADOWGW_MEASURE_MESSAGES"); v != "" {
		per = v
	}
	common := []string{"--devices", devices, "--messages", per, "--size", "256", "--window", "100"}
	cloud := func(queue string) []string {
		return []string{"--cloud-url", b.URL, "--cloud-ca", b.CAFile, "--cloud-user", b.User, "--cloud-password-file", pw, "--cloud-address", "/queue/" + queue}
	}
	type kind struct {
		name string
		args []string
	}
	kinds := []kind{
		{"rabbitmq stored", append(append([]string{"--addr", rabbit, "--address", "bench-stored", "--gateway-pid", strconv.Itoa(rabbitPID)}, cloud("bench-stored")...), common...)},
		{"rabbitmq direct", append(append([]string{"--addr", rabbit, "--address", "bench-direct", "--gateway-pid", strconv.Itoa(rabbitPID)}, cloud("bench-direct")...), common...)},
		{"rabbitmq straight (no gateway)", append(append([]string{"--straight"}, cloud("bench-direct")...), common...)},
		{"proton stored", append([]string{"--addr", proton, "--address", "bench-stored", "--gateway-pid", strconv.Itoa(protonPID)}, common...)},
		{"proton direct", append([]string{"--addr", proton, "--address", "bench-direct", "--gateway-pid", strconv.Itoa(protonPID)}, common...)},
	}
	// Warm up: queues declared, links attached.
	for _, k := range kinds {
		warm := append([]string{}, k.args...)
		for i, a := range warm {
			if a == "--messages" {
				warm[i+1] = "20"
			}
		}
		bench(t, warm...)
	}
	protonC := devicetest.ProtonSendSSL(t)
	var table []string
	for round := 1; round <= 2; round++ {
		if protonC != "" {
			// Proton C's send-ssl example: unsettled, waits for every outcome; TLS
			// verifying the broker's certificate against its CA (OpenSSL's default verify
			// paths, SSL_CERT_FILE), SASL PLAIN. /amq/queue/ does not declare the queue
			// (it exists).
			n, _ := strconv.Atoi(per)
			n *= 4
			start := time.Now()
			cmd := exec.Command(protonC, "127.0.0.1", b.URL[strings.LastIndex(b.URL, ":")+1:], "/amq/queue/bench-direct",
				strconv.Itoa(n), b.User, b.Password)
			cmd.Args[0] = "send-ssl"
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.CAFile)
			out, err := cmd.CombinedOutput()
			el := time.Since(start)
			line := "round " + strconv.Itoa(round) + " rabbitmq straight, Proton C send-ssl: "
			if err != nil {
				line += "failed: " + err.Error() + ": " + strings.TrimSpace(string(out))
			} else {
				line += strconv.Itoa(n) + " in " + el.Round(time.Millisecond).String() + ": " + strconv.FormatFloat(float64(n)/el.Seconds(), 'f', 0, 64) + " msg/s (connect included; " + strings.TrimSpace(string(out)) + ")"
			}
			table = append(table, line)
		}
		for _, k := range kinds {
			r, _ := bench(t, k.args...)
			line := k.name + ": "
			line += strconv.FormatFloat(r.IngestPerSecond, 'f', 0, 64) + " msg/s accepted"
			if l := r.AckLatency; l != nil {
				line += ", send→accepted p50 " + strconv.FormatFloat(l.P50, 'f', 2, 64) + " ms p99 " + strconv.FormatFloat(l.P99, 'f', 2, 64) + " ms"
			}
			if c := r.Cloud; c != nil && c.Latency != nil {
				line += ", cloud " + strconv.FormatFloat(c.PerSecond, 'f', 0, 64) + " msg/s, send→arrival p50 " + strconv.FormatFloat(c.Latency.P50, 'f', 2, 64) + " ms p99 " + strconv.FormatFloat(c.Latency.P99, 'f', 2, 64) + " ms"
			}
			if g := r.Gateway; g != nil {
				line += ", gateway " + strconv.FormatFloat(g.CPUMicrosPerMsg, 'f', 0, 64) + " µs CPU/msg"
			}
			if la, err := os.ReadFile("/proc/loadavg"); err == nil {
				line += ", load " + strings.Join(strings.Fields(string(la))[:3], " ")
			}
			table = append(table, "round "+strconv.Itoa(round)+" "+line)
		}
	}
	t.Logf("\n%s", strings.Join(table, "\n"))
}
