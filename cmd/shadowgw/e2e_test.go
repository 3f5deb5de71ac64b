package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestEndToEnd runs the main job against a real RabbitMQ over TLS with SASL PLAIN: plain
// AMQP devices → the shadowgw binary → bbolt → TLS uplink. One broker serves the
// subtests, which run one after another and use their own queues.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start RabbitMQ")
	}
	b := cloudtest.StartRabbitMQ(t)
	t.Run("devices to cloud exactly once", func(t *testing.T) { testExactlyOnce(t, b) })
	t.Run("cloud down while devices send", func(t *testing.T) { testCloudOutage(t, b) })
	t.Run("gateway killed while devices send", func(t *testing.T) { testGatewayKilled(t, b) })
	t.Run("uplink misconfigured then fixed", func(t *testing.T) { testUplinkRecovers(t, b) })
	t.Run("bad device input", func(t *testing.T) { testBadInput(t, b) })
	t.Run("alarms overtake a backlog", func(t *testing.T) { testPriorityDrain(t, b) })
}

// sendAll runs devices concurrently, each sending n messages, and fails the test unless
// every message was accepted.
func sendAll(t *testing.T, addr, address string, devices, n, size int) ([]*device, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ds := make([]*device, devices)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ds {
		ds[i] = &device{id: fmt.Sprintf("dev-%d", i)}
		wg.Add(1)
		go func(d *device) {
			defer wg.Done()
			d.send(ctx, addr, address, 0, n, size, 200)
		}(ds[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, d := range ds {
		if d.err != nil || len(d.accepted) != n {
			t.Fatalf("device %s: %d of %d accepted, err %v", d.id, len(d.accepted), n, d.err)
		}
	}
	return ds, elapsed
}

// receiveExactlyOnce reads want messages from the cloud queue and checks each arrived
// once, intact, and that no more arrive.
func receiveExactlyOnce(t *testing.T, b *cloudtest.Broker, queue string, want, size int, timeout time.Duration) {
	t.Helper()
	msgs := b.Receive(t, queue, want, timeout)
	seen := make(map[key]bool, want)
	for _, m := range msgs {
		k, err := check(t, m, size)
		if err != nil {
			t.Fatal(err)
		}
		if seen[k] {
			t.Fatalf("%v arrived twice", k)
		}
		seen[k] = true
	}
	b.ExpectEmpty(t, queue, 2*time.Second)
}

// Test 1: 10,000 messages from 4 concurrent devices arrive in the cloud queue, each
// exactly once, bodies and application-properties intact.
//
// Two devices are go-amqp and two are Proton Python (Debian's python3-qpid-proton), all
// sending unsettled at the same time.
func testExactlyOnce(t *testing.T, b *cloudtest.Broker) {
	data := t.TempDir()
	g := startGateway(t, uplinkArgs(t, b, data, "")...)
	const devices, per, size = 4, 2500, 256
	start := time.Now()
	var py []*devicetest.Device
	for i := 0; i < 2; i++ {
		py = append(py, devicetest.StartPython(t, devicetest.PythonOptions{
			Addr: g.addr, Address: "e2e-once", Count: per, Size: size, SASL: devicetest.Anonymous,
			Device: fmt.Sprintf("py-%d", i), Timeout: 2 * time.Minute,
		}))
	}
	sendAll(t, g.addr, "e2e-once", devices-len(py), per, size)
	for _, d := range py {
		if r := d.Wait(); r.Accepted != per || len(r.Errors) > 0 {
			t.Fatalf("python device: %d of %d accepted, errors %v", r.Accepted, per, r.Errors)
		}
	}
	elapsed := time.Since(start)
	rate := float64(devices*per) / elapsed.Seconds()
	start = time.Now()
	receiveExactlyOnce(t, b, "/queue/e2e-once", devices*per, size, 2*time.Minute)
	t.Logf("ingest: %d messages of %d B from %d devices (2 go-amqp, 2 Proton Python; unsettled, durable) in %v: %.0f msg/s; cloud had all %v later",
		devices*per, size, devices, elapsed.Round(time.Millisecond), rate, time.Since(start).Round(time.Millisecond))
	t.Logf("plain fsyncs/s on the same disk: %.0f (one-fsync-per-message ceiling); ingest/fsync ratio %.1f",
		fsyncRate(t, data), rate/fsyncRate(t, data))
	g.stop()
}

// fsyncRate measures write+fsync of a small file in dir for half a second.
func fsyncRate(t *testing.T, dir string) float64 {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 256)
	n, start := 0, time.Now()
	for time.Since(start) < 500*time.Millisecond {
		if _, err := f.WriteAt(buf, int64(n%64)*256); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// Test 2: the cloud is down; devices send 10,000 messages, all accepted by the gateway;
// the cloud comes back and all 10,000 arrive.
func testCloudOutage(t *testing.T, b *cloudtest.Broker) {
	g := startGateway(t, uplinkArgs(t, b, t.TempDir(), "")...)
	// Create the queue while the cloud is up, so the test reads the same durable queue.
	sendAll(t, g.addr, "e2e-outage", 1, 1, 64)
	receiveExactlyOnce(t, b, "/queue/e2e-outage", 1, 64, time.Minute)

	b.Stop()
	stopped := true
	defer func() {
		if stopped {
			b.Start()
		}
	}()
	const devices, per, size = 4, 2500, 128
	_, elapsed := sendAll(t, g.addr, "e2e-outage", devices, per, size)
	t.Logf("%d messages accepted with the cloud down in %v", devices*per, elapsed.Round(time.Millisecond))
	b.Start()
	stopped = false
	start := time.Now()
	msgs := b.Receive(t, "/queue/e2e-outage", devices*per, 2*time.Minute)
	t.Logf("backlog of %d delivered %v after the cloud came back", len(msgs), time.Since(start).Round(time.Millisecond))
	seen := map[key]bool{}
	for _, m := range msgs {
		k, err := check(t, m, size)
		if err != nil {
			t.Fatal(err)
		}
		if seen[k] {
			t.Fatalf("%v arrived twice", k)
		}
		seen[k] = true
	}
	b.ExpectEmpty(t, "/queue/e2e-outage", 2*time.Second)
	g.stop()
}

// Test 3: the gateway is SIGKILLed while devices send, then restarted: every message a
// device saw accepted arrives. Duplicates are allowed only for deliveries in flight
// upstream at the kill; they are counted and reported.
func testGatewayKilled(t *testing.T, b *cloudtest.Broker) {
	data := t.TempDir()
	args := uplinkArgs(t, b, data, "")
	g := startGateway(t, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds := make([]*device, 4)
	var wg sync.WaitGroup
	for i := range ds {
		ds[i] = &device{id: fmt.Sprintf("kill-%d", i)}
		wg.Add(1)
		go func(d *device) {
			defer wg.Done()
			d.send(ctx, g.addr, "e2e-kill", 0, 1_000_000, 100, 100)
		}(ds[i])
	}
	// Kill once a good number of messages were accepted, while sends and forwards run.
	deadline := time.Now().Add(30 * time.Second)
	for total(ds) < 3000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	g.kill()
	wg.Wait()
	cancel()
	acked := map[key]bool{}
	for _, d := range ds {
		for _, s := range d.accepted {
			acked[key{d.id, int64(s)}] = true
		}
	}
	if len(acked) < 1000 {
		t.Fatalf("only %d messages accepted before the kill", len(acked))
	}
	g.start()
	got := b.Drain(t, "/queue/e2e-kill", 5*time.Second)
	// Drain stops at the first quiet gap; keep reading until every acknowledged message
	// arrived or a minute passed.
	deadline = time.Now().Add(time.Minute)
	counts := map[key]int{}
	add := func(ms []*amqp.Message) {
		for _, m := range ms {
			k, err := check(t, m, 100)
			if err != nil {
				t.Fatal(err)
			}
			counts[k]++
		}
	}
	add(got)
	for missing(acked, counts) > 0 && time.Now().Before(deadline) {
		add(b.Drain(t, "/queue/e2e-kill", 2*time.Second))
	}
	if n := missing(acked, counts); n > 0 {
		t.Fatalf("%d of %d acknowledged messages never arrived", n, len(acked))
	}
	dups, unacked := 0, 0
	for k, n := range counts {
		dups += n - 1
		if !acked[k] {
			unacked++
		}
	}
	t.Logf("kill -9 under load: %d acknowledged, all arrived; %d duplicates (in flight upstream at the kill); %d arrived that the device never saw accepted",
		len(acked), dups, unacked)
	g.stop()
}

func total(ds []*device) int {
	n := 0
	for _, d := range ds {
		n += len(d.accepted)
	}
	return n
}

func missing(acked map[key]bool, counts map[key]int) int {
	n := 0
	for k := range acked {
		if counts[k] == 0 {
			n++
		}
	}
	return n
}

// Test 4: a wrong uplink password and an untrusted CA give one clear log line per
// attempt, the gateway keeps accepting and buffering, and it recovers by itself once the
// files are fixed.
func testUplinkRecovers(t *testing.T, b *cloudtest.Broker) {
	for _, tc := range []struct {
		name   string
		break_ func(pw, ca string)
		fix    func(pw, ca string)
	}{
		{"wrong password",
			func(pw, ca string) { write(t, pw, "not-the-password\n") },
			func(pw, ca string) { write(t, pw, b.Password+"\n") }},
		{"untrusted CA",
			func(pw, ca string) {
				other := cloudtest.NewCertificates(t, t.TempDir(), "x")
				write(t, ca, read(t, other.CAFile))
			},
			func(pw, ca string) { write(t, ca, read(t, b.CAFile)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pw, ca := filepath.Join(dir, "pw"), filepath.Join(dir, "ca.pem")
			write(t, ca, read(t, b.CAFile))
			write(t, pw, b.Password+"\n")
			tc.break_(pw, ca)
			conf := filepath.Join(dir, "shadowgw.conf")
			write(t, conf, "[uplink]\naddress-prefix = /queue/\nreconnect-min = 200ms\nreconnect-max = 400ms\n[metrics]\nlisten = "+freeAddr(t)+"\n")
			queue := "e2e-fix-" + map[string]string{"wrong password": "pw", "untrusted CA": "ca"}[tc.name]
			g := startGateway(t, "--config", conf, "--data", t.TempDir(), "--uplink", b.URL,
				"--uplink-ca", ca, "--uplink-user", b.User, "--uplink-password-file", pw)
			start := time.Now()
			sendAll(t, g.addr, queue, 2, 500, 64)
			// Wait for a few failed attempts. RabbitMQ answers a wrong password only
			// after about 3 s (a brute-force brake), a bad certificate at once.
			deadline := start.Add(30 * time.Second)
			for g.log.count("level=WARN", "component=uplink") < 3 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			lines, elapsed := g.log.count("level=WARN", "component=uplink"), time.Since(start)
			// One line per attempt: attempts are at least reconnect-min (200ms) apart.
			most := int(elapsed/(200*time.Millisecond)) + 2
			t.Logf("%d uplink warning lines in %v of failing attempts (backoff 200–400ms)", lines, elapsed.Round(time.Millisecond))
			if lines < 3 || lines > most {
				t.Errorf("uplink warning lines = %d in %v, want one per attempt (3–%d):\n%s", lines, elapsed, most, g.log)
			}
			if g.log.count(b.Password) > 0 {
				t.Errorf("the password appears in the log")
			}
			tc.fix(pw, ca)
			receiveExactlyOnce(t, b, "/queue/"+queue, 1000, 64, time.Minute)
			g.stop()
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Test 5: a device that sends garbage, or a frame larger than the negotiated
// max-frame-size, is closed with the error the spec calls for; a device connected at the
// same time is unaffected.
func testBadInput(t *testing.T, b *cloudtest.Broker) {
	g := startGateway(t, uplinkArgs(t, b, t.TempDir(), "")...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good := &device{id: "good"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		good.send(ctx, g.addr, "e2e-bad", 0, 3000, 64, 20)
	}()

	// Garbage instead of a protocol header: §2.2, answered with a supported header, then
	// the socket is closed.
	nc := dialRaw(t, g.addr)
	nc.Write([]byte("\x16\x03\x01\x02\x00garbage that is not AMQP"))
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(nc, hdr); err != nil || string(hdr[:4]) != "AMQP" {
		t.Fatalf("after garbage: header %q, err %v; want an AMQP protocol header", hdr, err)
	}
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after garbage: read = %v, want EOF", err)
	}

	// A frame larger than the max-frame-size the gateway announced: closed with
	// amqp:connection:framing-error (§2.8.15).
	nc = dialRaw(t, g.addr)
	br := bufio.NewReader(nc)
	nc.Write(frame.ProtoAMQP[:])
	io.ReadFull(br, hdr)
	nc.Write(frame.Append(nil, frame.TypeAMQP, 0, &frame.Open{ContainerID: "bad", MaxFrameSize: 65536, ChannelMax: 1}, nil))
	open := nextBody(t, br)
	max := open.(*frame.Open).MaxFrameSize
	big := make([]byte, max+100)
	copy(big, []byte{byte((max + 100) >> 24), byte((max + 100) >> 16), byte((max + 100) >> 8), byte(max + 100), 2, 0, 0, 0})
	nc.Write(big)
	cl, ok := nextBody(t, br).(*frame.Close)
	if !ok || cl.Error == nil || cl.Error.Condition != frame.ErrFramingError {
		t.Fatalf("after an oversized frame: got %#v, want close with amqp:connection:framing-error", cl)
	}
	t.Logf("oversized frame: %v", cl.Error)

	<-done
	if good.err != nil || len(good.accepted) != 3000 {
		t.Fatalf("the well-behaved device: %d of 3000 accepted, err %v", len(good.accepted), good.err)
	}
	msgs := b.Receive(t, "/queue/e2e-bad", 3000, time.Minute)
	seqs := make([]int, 0, len(msgs))
	for _, m := range msgs {
		k, err := check(t, m, 64)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, int(k.seq))
	}
	if !sort.IntsAreSorted(seqs) {
		t.Errorf("messages of one device arrived out of order")
	}
	g.stop()
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return nc
}

// nextBody reads frames until one with a body and decodes it.
func nextBody(t *testing.T, br *bufio.Reader) frame.Body {
	t.Helper()
	for {
		var h [frame.HeaderSize]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		hd, err := frame.ParseHeader(h, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, hd.Size-frame.HeaderSize)
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatal(err)
		}
		b, _, err := frame.Decode(hd.Type, buf[int(hd.DOff)*4-frame.HeaderSize:])
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			return b
		}
	}
}

// Test 6: routes with priorities. While the cloud is down, devices send a telemetry
// backlog and then alarms; when the cloud comes back the alarms are forwarded first.
//
// To see the order in which the cloud received them, both routes end in the same
// RabbitMQ queue: telemetry is sent to /queue/e2e-prio and alarms to
// /amq/queue/e2e-prio (RabbitMQ's address of an existing queue), which an [route]
// pattern tells apart.
func testPriorityDrain(t *testing.T, b *cloudtest.Broker) {
	const queue, alarmsAddr = "/queue/e2e-prio", "/amq/queue/e2e-prio"
	args := uplinkArgs(t, b, t.TempDir(), "[route \"alarms\"]\naddresses = /amq/queue/*\npriority = 10\n")
	for i, a := range args {
		if a == "--config" {
			conf := args[i+1]
			text := strings.Replace(read(t, conf), "address-prefix = /queue/", "address-prefix =", 1)
			write(t, conf, text)
		}
	}
	g := startGateway(t, args...)
	// Create the queue while the cloud is up.
	sendAll(t, g.addr, queue, 1, 1, 64)
	receiveExactlyOnce(t, b, queue, 1, 64, time.Minute)

	b.Stop()
	stopped := true
	defer func() {
		if stopped {
			b.Start()
		}
	}()
	const telemetry, alarms, size = 5000, 100, 128
	sendAll(t, g.addr, queue, 2, telemetry/2, size)
	alarm := &device{id: "alarm"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	alarm.send(ctx, g.addr, alarmsAddr, 0, alarms, size, 50)
	cancel()
	if alarm.err != nil || len(alarm.accepted) != alarms {
		t.Fatalf("alarms: %d of %d accepted, err %v", len(alarm.accepted), alarms, alarm.err)
	}
	b.Start()
	stopped = false
	msgs := b.Receive(t, queue, telemetry+alarms, 2*time.Minute)
	last, seen := -1, 0
	for i, m := range msgs {
		if id, _ := m.ApplicationProperties["device"].(string); id == alarm.id {
			last, seen = i, seen+1
		}
	}
	if seen != alarms {
		t.Fatalf("%d alarms arrived, want %d", seen, alarms)
	}
	t.Logf("the last of %d alarms arrived as message %d of %d (backlog of %d telemetry sent before them)",
		alarms, last+1, len(msgs), telemetry)
	// The alarms are read first; other addresses' messages may be on the wire at the
	// same time, at most an in-flight window of them.
	if last >= alarms+256 {
		t.Fatalf("the last alarm arrived as message %d of %d, want within the first %d", last+1, len(msgs), alarms+256)
	}
	b.ExpectEmpty(t, queue, 2*time.Second)
	g.stop()
}
