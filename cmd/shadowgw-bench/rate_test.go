package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestRate measures, in one run and alternating, the end-to-end rate into a fast
// in-memory broker (a rhea sink from npm that accepts and counts, over TLS with SASL
// PLAIN) of:
//
//   - proton: a Proton C sender (Debian's send-ssl example) straight to it, from its
//     start until the broker counted every message;
//   - straight: the load tool's 4 devices (go-amqp) straight to it, with the messages
//     the gateway gets (the broker's cost of their content, without the gateway);
//   - online: 4 load-tool devices → the gateway → the broker, from the devices' start
//     until the broker counted every message;
//   - via: a Proton C sender (Debian's send example, plain AMQP) → the gateway → the
//     broker: the same messages as proton's, so that the broker's CPU per message
//     compares the gateway's traffic with the sender's own;
//   - via bare: via with [uplink] source-annotation = none;
//   - python, python annotated: one Python Proton sender (testdata/send.py) straight
//     to it, sending the messages the gateway forwards in via bare and in via:
//     what the source annotation costs the broker from any sender;
//
// with the CPU time per message of the sender (send-ssl, or the gateway: ingest,
// store and forward) and of the broker (node). It runs only when SHADOWGW_BENCH_COST
// is set to the messages per run; SHADOWGW_BENCH_ROUNDS and SHADOWGW_BENCH_BASELINE
// are as for TestCost:
//
//	SHADOWGW_BENCH_COST=20000 go test -count=1 -run TestRate -v ./cmd/shadowgw-bench/
//
// Performance is reported, not asserted.
func TestRate(t *testing.T) {
	m := newRuns(t, "set SHADOWGW_BENCH_COST to the messages per run to measure the rate into a fast broker")
	n := m.n
	b := cloudtest.StartRheaSink(t)
	send := devicetest.ProtonSendSSL(t)
	plain := devicetest.ProtonSend(t)
	pw := b.WritePasswordFile(t)
	bare := writeConf(t, t.TempDir(), "bare.conf", "[uplink]\nsource-annotation = none\n")
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(b.URL, "amqps://"))
	total := 0 // what the broker counted so far

	// The broker's first messages cost it several times what later ones do (V8 compiles
	// rhea's code as it runs): an unmeasured run first, so that round 0 compares too.
	warm := exec.Command(send, host, port, "rate-warm-up", strconv.Itoa(n), b.User, b.Password)
	warm.Args[0] = "send-ssl"
	warm.Env = append(os.Environ(), "SSL_CERT_FILE="+b.CAFile)
	if out, err := warm.CombinedOutput(); err != nil {
		t.Fatalf("send-ssl: %v\n%s", err, out)
	}
	total += n
	b.WaitCount(t, total, 5*time.Minute)

	for round := range m.rounds {
		bb := readProc(b.PID())
		start := time.Now()
		cmd := exec.Command(send, host, port, fmt.Sprintf("rate-proton-%d", round), strconv.Itoa(n), b.User, b.Password)
		cmd.Args[0] = "send-ssl"
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.CAFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("send-ssl: %v\n%s", err, out)
		}
		total += n
		end := b.WaitCount(t, total, 5*time.Minute)
		ba := readProc(b.PID())
		m.record("proton", cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime(), bb, ba, end.Sub(start).Seconds())

		// One Python Proton sender, sending the messages the gateway forwards for
		// send's, without and with the source annotation (testdata/send.py): what
		// the annotation costs the broker when any sender sends it.
		for _, name := range []string{"python", "python annotated"} {
			args := []string{"testdata/send.py", b.URL, fmt.Sprintf("rate-%s-%d", strings.ReplaceAll(name, " ", "-"), round), strconv.Itoa(n),
				"--user", b.User, "--ca", b.CAFile}
			if name == "python annotated" {
				args = append(args, "--annotate")
			}
			py := exec.Command("/usr/bin/python3", args...)
			py.Env = append(os.Environ(), "SEND_PASSWORD="+b.Password)
			bb := readProc(b.PID())
			start := time.Now()
			if out, err := py.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, out)
			}
			total += n
			end := b.WaitCount(t, total, 5*time.Minute)
			ba := readProc(b.PID())
			m.record(name, py.ProcessState.UserTime()+py.ProcessState.SystemTime(), bb, ba, end.Sub(start).Seconds())
		}

		// The load tool's devices (go-amqp) straight to the broker: the gateway's
		// messages without the gateway, for the broker's cost of their content.
		bb = readProc(b.PID())
		start = time.Now()
		if r, code := bench(t, "--durable=false", "--devices", "4", "--messages", strconv.Itoa(n/4), "--size", "100", "--straight", "--no-consumer",
			"--cloud-url", b.URL, "--cloud-ca", b.CAFile, "--cloud-user", b.User, "--cloud-password-file", pw,
			"--cloud-address", fmt.Sprintf("rate-straight-%d", round)); code != 0 || r.Accepted != n {
			t.Fatalf("straight: exit %d, %d of %d accepted, errors %v", code, r.Accepted, n, r.Errors)
		}
		total += n
		end = b.WaitCount(t, total, 5*time.Minute)
		ba = readProc(b.PID())
		m.record("go-amqp straight", 0, bb, ba, end.Sub(start).Seconds())

		for _, name := range m.builds {
			for _, dev := range append([]string{"online"}, viaKinds(name)...) {
				args := []string{"--uplink", b.URL, "--uplink-ca", b.CAFile, "--uplink-user", b.User, "--uplink-password-file", pw}
				if dev == "via bare" {
					args = append(args, "--config", bare)
				}
				gw := startGateway(t, m.bins[name], "", args...)
				ga, bb := readProc(gw.pid()), readProc(b.PID())
				start := time.Now()
				address := fmt.Sprintf("rate-%s-%s-%d", name, strings.ReplaceAll(dev, " ", "-"), round)
				if dev == "online" {
					r, code := bench(t, "--durable=false", "--devices", "4", "--messages", strconv.Itoa(n/4), "--size", "100",
						"--address", address, "--addr", gw.addr, "--gateway-pid", strconv.Itoa(gw.pid()))
					if code != 0 || r.Accepted != n {
						gw.stop()
						t.Fatalf("%s: exit %d, %d of %d accepted, errors %v", name, code, r.Accepted, n, r.Errors)
					}
				} else {
					h, p, _ := net.SplitHostPort(gw.addr)
					if _, err := devicetest.RunProtonSend(t, plain, h, p, address, n); err != nil {
						gw.stop()
						t.Fatalf("%s: send: %v", name, err)
					}
				}
				total += n
				end := b.WaitCount(t, total, 5*time.Minute)
				gz, ba := readProc(gw.pid()), readProc(b.PID())
				gw.stop()
				m.record(name+" "+dev, gz.cpu-ga.cpu, bb, ba, end.Sub(start).Seconds())
			}
		}
	}

	m.report("into a rhea sink", []string{"proton", "go-amqp straight", "python", "python annotated"}, "online", "via", "via bare")
}
