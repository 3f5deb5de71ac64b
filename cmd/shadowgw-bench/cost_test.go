package main

import (
	"fmt"
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

// TestCost measures the CPU time per message, in one run and alternating, of:
//
//   - proton: a Proton C sender (Debian's send-ssl example) sending straight to
//     RabbitMQ over TLS, unsettled: the reference;
//   - online: devices → the gateway → TLS → RabbitMQ, consumed as it arrives (the
//     gateway's ingest + store + forward);
//   - drain: a gateway started on a store that holds the messages already, until all
//     arrived in RabbitMQ (forward only; includes the gateway's start);
//   - via: a Proton C sender (Debian's send example, plain AMQP) → the gateway → TLS →
//     RabbitMQ, consumed after: proton's messages, not durable like proton's, so the
//     broker's CPU per message compares like with like; the online path as the issue
//     that asked for this benchmark measured it (#15);
//   - via bare: via with [uplink] source-annotation = none, the messages as the
//     device sent them, for what the annotation costs the broker;
//
// and for each the broker's (RabbitMQ's beam process) CPU time per message, taking in
// and delivering to a consumer. It runs only when SHADOWGW_BENCH_COST is set to the
// number of messages per run; SHADOWGW_BENCH_ROUNDS sets the rounds (default 3),
// SHADOWGW_BENCH_RATE a total rate for the online runs' devices (for the ack latency at
// a given rate; default as fast as they can), SHADOWGW_BENCH_TRANSIENT (set: the devices'
// messages are not durable, as send-ssl's; unset: they have the header's durable flag,
// as the load tool's default), and SHADOWGW_BENCH_BASELINE names another
// shadowgw binary whose online and drain runs alternate with this one's:
//
//	SHADOWGW_BENCH_COST=20000 go test -count=1 -run TestCost -v ./cmd/shadowgw-bench/
//
// Performance is reported, not asserted: the figures depend on the machine and its load.
func TestCost(t *testing.T) {
	m := newRuns(t, "set SHADOWGW_BENCH_COST to the messages per run to measure the cost per message")
	n := m.n
	rate := os.Getenv("SHADOWGW_BENCH_RATE") // of the online runs' devices, all together; default as fast as they can
	if rate == "" {
		rate = "0"
	}
	// The devices' messages are durable by default (the load tool's default), while
	// send-ssl's are not: RabbitMQ writes a durable message in a durable queue to disk,
	// which counts in its CPU per message for the gateway's traffic (TestRate compares
	// the broker's cost like with like). SHADOWGW_BENCH_TRANSIENT=1 makes them not
	// durable; with it, RabbitMQ 3.10 was seen to stop delivering to the load tool's
	// consumer now and then, the rest of the messages left in the queue (the run fails,
	// saying how many). The gateway stores every message either way.
	durable := "--durable=true"
	if os.Getenv("SHADOWGW_BENCH_TRANSIENT") != "" {
		durable = "--durable=false"
	}
	b := cloudtest.StartRabbitMQ(t)
	send := devicetest.ProtonSendSSL(t)
	plain := devicetest.ProtonSend(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := os.Getenv("SHADOWGW_BENCH_UPLINK_CONF")
	uplink := func(conf string) []string {
		return []string{"--config", conf, "--uplink", b.URL, "--uplink-ca", b.CAFile, "--uplink-user", b.User, "--uplink-password-file", pw}
	}
	uplinkArgs := uplink(writeConf(t, dir, "shadowgw.conf", "[uplink]\naddress-prefix = /queue/\n"+extra))
	bareArgs := uplink(writeConf(t, dir, "bare.conf", "[uplink]\naddress-prefix = /queue/\nsource-annotation = none\n"+extra))
	host, port, _ := net.SplitHostPort(b.Addr)
	beam := func() int {
		s, err := os.ReadFile(filepath.Join(b.Dir, "rabbitmq.pid"))
		if err != nil {
			t.Fatalf("RabbitMQ's pid file: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(s)))
		return pid
	}()

	for round := range m.rounds {
		// Proton C straight to the broker, into a queue declared as the gateway's
		// are (durable: its target's durability is configuration), sent to by its
		// name without declaring it (/amq/queue/, RabbitMQ 3.10's address of an
		// existing queue): send-ssl's own target would declare one not durable, and
		// RabbitMQ's cost per message differs between the two.
		name := fmt.Sprintf("cost-proton-%d", round)
		b.Send(t, "/queue/"+name)
		bb := readProc(beam)
		start := time.Now()
		cmd := exec.Command(send, host, port, "/amq/queue/"+name, strconv.Itoa(n), b.User, b.Password)
		cmd.Args[0] = "send-ssl"
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.CAFile) // OpenSSL's default verify paths
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("send-ssl: %v\n%s", err, out)
		}
		secs := time.Since(start).Seconds()
		// Empty the queue: the broker's CPU counts delivering to a consumer, as in the
		// gateway's runs.
		b.Receive(t, "/queue/"+name, n, 5*time.Minute)
		ba := readProc(beam)
		m.record("proton", cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime(), bb, ba, secs)

		for _, name := range m.builds {
			// Online: the load tool's devices, gateway and consumer. RabbitMQ 3.10 now and
			// then stops delivering to the consumer, the rest of the messages accepted and
			// left in the queue: such a run says nothing about the gateway's rate, so it
			// is run again (once) on a new queue.
			var r *report
			var ba procSample
			var bb procSample
			for attempt := 0; ; attempt++ {
				addr := freeAddr(t)
				data := filepath.Join(t.TempDir(), "data")
				cq := fmt.Sprintf("cost-%s-%d-%d", name, round, attempt)
				bb = readProc(beam)
				var code int
				r, code = bench(t, append([]string{durable, "--devices", "4", "--messages", strconv.Itoa(n / 4), "--size", "100", "--rate", rate,
					"--address", cq, "--cloud-url", b.URL, "--cloud-ca", b.CAFile, "--cloud-user", b.User, "--cloud-password-file", pw,
					"--cloud-address", "/queue/" + cq, "--spawn-log", filepath.Join(dir, cq+".log"),
					"--spawn", m.bins[name], "--addr", addr, "--",
					"run", "--listen", addr, "--data", data, "--metrics="}, uplinkArgs...)...)
				ba = readProc(beam)
				if code == 0 && r.Gateway != nil && r.Cloud != nil && r.Cloud.Arrived == n/4*4 {
					break
				}
				left := 0
				if r.Cloud != nil && r.Cloud.Lost > 0 {
					// Were they lost, or still in the queue after the consumer gave up?
					left = len(b.Drain(t, "/queue/"+cq, 10*time.Second))
					t.Logf("%s online: %d messages still in the queue after the run (the consumer stopped after --cloud-quiet)", name, left)
				}
				if attempt == 0 && r.Cloud != nil && r.Cloud.Lost == left && r.Cloud.Duplicated == 0 {
					continue
				}
				log, _ := os.ReadFile(filepath.Join(dir, cq+".log"))
				t.Fatalf("%s online: exit %d, cloud %+v, gateway %+v, errors %v; the gateway's log:\n%s", name, code, r.Cloud, r.Gateway, r.Errors, lastLines(log, 40))
			}
			m.record(name+" online", time.Duration(r.Gateway.CPUSeconds*1e9), bb, ba, r.Cloud.Seconds)
			if r.AckLatency != nil {
				t.Logf("%-16s ack latency p50 %.2f ms p99 %.2f ms; RSS before the devices (connected, idle) %.1f MiB",
					name+" online", r.AckLatency.P50, r.AckLatency.P99, float64(r.Gateway.RSSBeforeBytes)/(1<<20))
			}

			// Drain: fill a store without an uplink, then start the gateway with one.
			dq := fmt.Sprintf("cost-drain-%s-%d", name, round)
			data := fillStore(t, m.bins[name], dq, n/4, 100, durable)
			bb = readProc(beam)
			start := time.Now()
			gw := startGateway(t, m.bins[name], data, uplinkArgs...)
			b.Receive(t, "/queue/"+dq, n/4*4, 5*time.Minute)
			secs := time.Since(start).Seconds()
			ga, ba := readProc(gw.pid()), readProc(beam)
			gw.stop()
			m.record(name+" drain", ga.cpu, bb, ba, secs)

			// Via: a Proton C device sends proton's messages through the gateway; the
			// run ends when the consumer got them all from the queue. "via bare":
			// the same with [uplink] source-annotation = none (this build only: a
			// baseline may not know the setting).
			for _, kind := range viaKinds(name) {
				vq := fmt.Sprintf("cost-%s-%s-%d", strings.ReplaceAll(kind, " ", "-"), name, round)
				args := uplinkArgs
				if kind == "via bare" {
					args = bareArgs
				}
				gw = startGateway(t, m.bins[name], "", args...)
				ga, bb = readProc(gw.pid()), readProc(beam)
				start = time.Now()
				h, p, _ := net.SplitHostPort(gw.addr)
				if _, err := devicetest.RunProtonSend(t, plain, h, p, vq, n); err != nil {
					gw.stop()
					t.Fatalf("%s %s: send: %v", name, kind, err)
				}
				b.Receive(t, "/queue/"+vq, n, 5*time.Minute)
				secs = time.Since(start).Seconds()
				gz, ba := readProc(gw.pid()), readProc(beam)
				gw.stop()
				m.record(name+" "+kind, gz.cpu-ga.cpu, bb, ba, secs)
			}
		}
	}

	m.report("into RabbitMQ (CPU per message: the process's user + system time)", []string{"proton"}, "online", "drain", "via", "via bare")
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) []byte {
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == '\n' {
			if n--; n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}
