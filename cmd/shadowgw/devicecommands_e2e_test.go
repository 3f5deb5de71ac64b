package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// Commands to devices, end to end: RabbitMQ over TLS is the cloud, go-amqp the cloud
// application and the devices, the gateway a real process that is killed with SIGKILL.

const deviceCmdQueue = "/queue/e2e-commands"

// commandArgs is uplinkArgs with [uplink] commands and anonymous devices.
func commandArgs(t *testing.T, b *cloudtest.Broker, dataDir, extra string) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "uplink.password")
	if err := os.WriteFile(pw, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	metrics := freeAddr(t)
	conf := filepath.Join(dir, "shadowgw.conf")
	text := "[edge]\nallow-anonymous = true\n[uplink]\naddress-prefix = /queue/\nreconnect-min = 100ms\nreconnect-max = 1s\ncommands = " + deviceCmdQueue + "\n" +
		"[metrics]\nlisten = " + metrics + "\n" + extra
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", conf, "--data", dataDir, "--uplink", b.URL, "--uplink-ca", b.CAFile,
		"--uplink-user", b.User, "--uplink-password-file", pw}, metrics
}

// metricSum adds the values of the gateway's metric lines that start with prefix.
func metricSum(g *gateway, prefix string) float64 {
	var sum float64
	for _, l := range strings.Split(g.scrape(prefix), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			sum += v
		}
	}
	return sum
}

func waitMetric(t *testing.T, g *gateway, prefix string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for metricSum(g, prefix) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %v, want %v\n%s", prefix, metricSum(g, prefix), timeout, want, g.scrape("shadowgw_commands"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func commandFor(dev string, i int, byTo bool) *amqp.Message {
	m := amqp.NewMessage([]byte(fmt.Sprintf("%s/%d", dev, i)))
	m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("%s-%d", dev, i)}
	if byTo {
		m.Properties.To = ptr("command/" + dev)
	} else {
		m.ApplicationProperties = map[string]any{"device_id": dev}
	}
	return m
}

// commandDevice receives its commands, reconnecting after errors, until it has want
// distinct ones or ctx ends; it records every arrival.
type commandDevice struct {
	id   string
	mu   sync.Mutex
	got  []int // command numbers in arrival order, duplicates included
	seen map[int]bool
}

func (d *commandDevice) distinct() int { d.mu.Lock(); defer d.mu.Unlock(); return len(d.seen) }

func (d *commandDevice) run(ctx context.Context, addr func() string, want int) {
	d.seen = map[int]bool{}
	for ctx.Err() == nil && d.distinct() < want {
		d.session(ctx, addr(), want)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *commandDevice) session(ctx context.Context, addr string, want int) {
	conn, err := amqp.Dial(ctx, "amqp://"+addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: d.id})
	if err != nil {
		return
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return
	}
	r, err := sess.NewReceiver(ctx, "command/"+d.id, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		return
	}
	for d.distinct() < want {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			return
		}
		var n int
		if _, err := fmt.Sscanf(string(m.GetData()), d.id+"/%d", &n); err != nil {
			return
		}
		d.mu.Lock()
		d.got = append(d.got, n)
		d.seen[n] = true
		d.mu.Unlock()
		if err := r.AcceptMessage(ctx, m); err != nil {
			return
		}
	}
}

// Issue 13, tests 1 and 2: 1,000 commands for four offline devices are taken from the
// cloud queue; the gateway is killed before the devices attach, and again while they
// receive; every device gets exactly its own commands, in order, nothing lost.
func TestCommandsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start RabbitMQ")
	}
	b := cloudtest.StartRabbitMQ(t)
	t.Run("offline devices, kill -9 twice", func(t *testing.T) { testCommandsOffline(t, b) })
	t.Run("request and response both ways", func(t *testing.T) { testRequestResponse(t, b) })
	t.Run("expired commands are never delivered", func(t *testing.T) { testCommandTTL(t, b) })
}

func testCommandsOffline(t *testing.T, b *cloudtest.Broker) {
	const perDevice = 250
	devs := []string{"d0", "d1", "d2", "d3"}
	var msgs []*amqp.Message
	for i := 0; i < perDevice; i++ {
		for k, d := range devs {
			msgs = append(msgs, commandFor(d, i, (i+k)%2 == 0))
		}
	}
	b.Send(t, deviceCmdQueue, msgs...)
	args, _ := commandArgs(t, b, t.TempDir(), "")
	g := startGateway(t, args...)
	waitMetric(t, g, "shadowgw_commands_received_total", 4*perDevice, time.Minute)
	// The gateway counts a command received when it has sent the accept; the cloud
	// has it accepted once the queue holds nothing, unacknowledged messages
	// included. A kill before that makes the cloud send the unprocessed ones again
	// (at least once), and they would be stored twice.
	waitDepth(t, b, strings.TrimPrefix(deviceCmdQueue, "/queue/"), 0, 30*time.Second)
	g.kill() // after the upstream accept, before any device attached
	g.start()
	waitMetric(t, g, "shadowgw_commands_queued{", 4*perDevice, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	addr := func() string { mu.Lock(); defer mu.Unlock(); return g.addr }
	ds := make([]*commandDevice, len(devs))
	var wg sync.WaitGroup
	for i, id := range devs {
		ds[i] = &commandDevice{id: id}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds[i].run(ctx, addr, perDevice)
		}()
	}
	// Kill again while the devices receive.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for _, d := range ds {
			n += d.distinct()
		}
		if n >= 2*perDevice {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	atKill := 0
	for _, d := range ds {
		atKill += d.distinct()
	}
	delivered := metricSum(g, "shadowgw_commands_delivered_total")
	g.kill()
	g.start()
	wg.Wait()
	t.Logf("at the kill: %d distinct commands received, %v deletes committed", atKill, delivered)
	dups := 0
	for _, d := range ds {
		if d.distinct() != perDevice {
			t.Fatalf("%s: %d distinct commands, want %d", d.id, d.distinct(), perDevice)
		}
		// In order: a number is either the next one, or a repeat of one in flight at
		// the kill (sent again from where the queue stood).
		next := 0
		for _, n := range d.got {
			switch {
			case n == next:
				next++
			case n < next:
				dups++
			default:
				t.Fatalf("%s: command %d arrived before %d: %v", d.id, n, next, d.got)
			}
		}
	}
	waitMetric(t, g, "shadowgw_commands_queued{", 0, 10*time.Second)
	g.kill()
	b.ExpectEmpty(t, deviceCmdQueue, time.Second) // the cloud queue is empty
	g.start()
	t.Logf("4 devices × %d commands, gateway killed before and during delivery: all delivered in order, %d sent again after the kill", perDevice, dups)
	g.stop()
}

// Issue 13, test 5: a device's request gets the cloud's reply on its command receiver,
// and a command's reply from the device reaches the cloud; correlation-ids kept.
func testRequestResponse(t *testing.T, b *cloudtest.Broker) {
	args, _ := commandArgs(t, b, t.TempDir(), "")
	g := startGateway(t, args...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := amqp.Dial(ctx, "amqp://"+g.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: "rr"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "command/rr", nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "e2e-requests", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Device → cloud request, reply-to its command address.
	req := amqp.NewMessage([]byte("what time is it"))
	req.Properties = &amqp.MessageProperties{MessageID: "req-1", ReplyTo: ptr("command/rr")}
	if err := snd.Send(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	got := b.Receive(t, "/queue/e2e-requests", 1, 30*time.Second)[0]
	reply := amqp.NewMessage([]byte("noon"))
	reply.Properties = &amqp.MessageProperties{CorrelationID: got.Properties.MessageID, To: got.Properties.ReplyTo}
	b.Send(t, deviceCmdQueue, reply)
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.GetData()) != "noon" || m.Properties.CorrelationID != "req-1" {
		t.Fatalf("reply on the command receiver: %q correlation-id %v", m.GetData(), m.Properties.CorrelationID)
	}
	rcv.AcceptMessage(ctx, m)

	// Cloud → device command with reply-to; the device answers with its correlation-id.
	cmd := commandFor("rr", 1, false)
	cmd.Properties.ReplyTo = ptr("e2e-replies")
	cmd.Properties.CorrelationID = "cmd-1"
	b.Send(t, deviceCmdQueue, cmd)
	m, err = rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv.AcceptMessage(ctx, m)
	rsnd, err := sess.NewSender(ctx, *m.Properties.ReplyTo, nil)
	if err != nil {
		t.Fatal(err)
	}
	ans := amqp.NewMessage([]byte("done"))
	ans.Properties = &amqp.MessageProperties{CorrelationID: m.Properties.CorrelationID}
	if err := rsnd.Send(ctx, ans, nil); err != nil {
		t.Fatal(err)
	}
	back := b.Receive(t, "/queue/e2e-replies", 1, 30*time.Second)[0]
	if string(back.GetData()) != "done" || back.Properties.CorrelationID != "cmd-1" {
		t.Fatalf("reply in the cloud: %q correlation-id %v", back.GetData(), back.Properties.CorrelationID)
	}
	g.stop()
}

// Issue 13, test 3: commands that expire on the gateway are never delivered, and the
// counters say so.
func testCommandTTL(t *testing.T, b *cloudtest.Broker) {
	args, _ := commandArgs(t, b, t.TempDir(), "")
	g := startGateway(t, args...)
	short := commandFor("ttl", 0, false)
	short.Header = &amqp.MessageHeader{TTL: 500 * time.Millisecond}
	b.Send(t, deviceCmdQueue, short, commandFor("ttl", 1, true))
	waitMetric(t, g, "shadowgw_commands_expired_total", 1, 30*time.Second)
	waitMetric(t, g, "shadowgw_commands_queued{", 1, 30*time.Second)
	// The operator sees the device's queue.
	out, err := exec.Command(binary, "queue", "--config", args[1], "commands").CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^ttl\s+1\s`).Match(out) {
		t.Fatalf("shadowgw queue commands: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "status", "--config", args[1]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 queued for 1 device(s), 0 delivered, 1 expired") {
		t.Fatalf("shadowgw status: %v\n%s", err, out)
	}
	d := &commandDevice{id: "ttl"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.run(ctx, func() string { return g.addr }, 1)
	if len(d.got) != 1 || d.got[0] != 1 {
		t.Fatalf("device got %v, want only command 1", d.got)
	}
	g.stop()
}
