package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// directCommandsConf makes the commands of devices dd-* direct, from /queue/c2d-<id>,
// and sends presence events to /queue/presence.
const directCommandsConf = "[commands]\ndirect = dd-*\ndirect-source = /queue/c2d-{device}\npresence = presence\n"

// Issue 14, test 4 (cloud → device, direct) and issue 13's presence, through RabbitMQ
// over TLS with the real binary; go-amqp devices.
func TestDirectCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start RabbitMQ")
	}
	b := cloudtest.StartRabbitMQ(t)
	args, _ := commandArgs(t, b, t.TempDir(), directCommandsConf)
	g := startGateway(t, args...)

	const dev, queue = "dd-1", "c2d-dd-1"
	var msgs []*amqp.Message
	for i := range 5 {
		msgs = append(msgs, amqp.NewMessage(fmt.Appendf(nil, "%s/%d", dev, i)))
	}
	b.Send(t, "/queue/"+queue, msgs...)

	// No device attached: nothing is taken from the cloud, though the uplink is up.
	waitMetric(t, g, "shadowgw_uplink_up", 1, 30*time.Second)
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := metricSum(g, "shadowgw_direct_commands_received_total"); n != 0 {
			t.Fatalf("taken from the cloud with no device attached: %v", n)
		}
	}
	if d := b.QueueDepth(t, queue); d != 5 {
		t.Fatalf("queue depth with no device attached: %d, want 5", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // RabbitMQ restarts once: 25 s under load
	defer cancel()
	// A device attaches with credit 2: it gets the first two, in order; it accepts the
	// first and detaches with the second unsettled: that one is released upstream.
	conn, rcv := directDevice(t, ctx, g.addr, dev, 2)
	got := receiveN(t, ctx, rcv, 2)
	wantBodies(t, got, dev, 0, 1)
	if err := rcv.AcceptMessage(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="accepted"}`, 1, 10*time.Second)
	// go-amqp gave the credit of the settled one back (one more): at most three
	// were taken from the cloud, the fourth and fifth stayed there.
	if n := metricSum(g, "shadowgw_direct_commands_received_total"); n > 3 {
		t.Errorf("taken from the cloud for a device with credit 2, then 1 more: %v", n)
	}
	conn.Close() // the second is unsettled
	waitMetric(t, g, "shadowgw_direct_commands_links_up", 0, 10*time.Second)
	waitDepth(t, b, queue, 4, 20*time.Second)

	// Reattach: the released one comes again, then the rest, in order. The device
	// rejects one: the cloud gets the rejection (RabbitMQ drops it).
	conn, rcv = directDevice(t, ctx, g.addr, dev, 10)
	defer conn.Close()
	got = receiveN(t, ctx, rcv, 4)
	wantBodies(t, got, dev, 1, 2, 3, 4)
	for i, m := range got {
		var err error
		if i == 1 {
			err = rcv.RejectMessage(ctx, m, &amqp.Error{Condition: "app:bad-command", Description: "no such setting"})
		} else {
			err = rcv.AcceptMessage(ctx, m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="accepted"}`, 4, 10*time.Second)
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="rejected"}`, 1, 10*time.Second)
	waitDepth(t, b, queue, 0, 20*time.Second)

	// Online: a message sent now reaches the attached device.
	start := time.Now()
	b.Send(t, "/queue/"+queue, amqp.NewMessage([]byte(dev+"/5")))
	got = receiveN(t, ctx, rcv, 1)
	wantBodies(t, got, dev, 5)
	t.Logf("online: cloud send → device receive in %v", time.Since(start).Round(time.Millisecond))
	if err := rcv.AcceptMessage(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if s := g.log.String(); g.log.count("level=ERROR") > 0 {
		t.Errorf("errors logged:\n%s", s)
	}

	// Presence: attached (ttd -1), gone (ttd 0), attached again, in order.
	events := b.Receive(t, "/queue/presence", 3, 30*time.Second)
	want := []int64{-1, 0, -1}
	for i, m := range events {
		ttd, _ := m.ApplicationProperties["ttd"].(int32)
		if id, _ := m.ApplicationProperties["device_id"].(string); id != dev || int64(ttd) != want[i] ||
			m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != "application/vnd.eclipse-hono-empty-notification" ||
			m.Properties.CreationTime == nil {
			t.Errorf("presence event %d: %v %+v, want device_id %s ttd %d", i, m.ApplicationProperties, m.Properties, dev, want[i])
		}
	}

	// A Proton C device (Debian's receive.c example, no SASL) gets 20 sent while it
	// was away, in order, and accepts them: the queue empties.
	conn.Close()
	waitMetric(t, g, "shadowgw_direct_commands_links_up", 0, 10*time.Second)
	msgs = nil
	for i := range 20 {
		msgs = append(msgs, amqp.NewMessage(fmt.Appendf(nil, "%s/p%d", dev, i)))
	}
	b.Send(t, "/queue/"+queue, msgs...)
	if d := b.QueueDepth(t, queue); d != 20 {
		t.Fatalf("queue depth with no device attached: %d, want 20", d)
	}
	host, port, _ := net.SplitHostPort(g.addr)
	out, err := devicetest.RunProtonSend(t, devicetest.ProtonReceive(t), host, port, "command/"+dev, 20)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 21 || lines[20] != "20 messages received" {
		t.Fatalf("Proton C output:\n%s", out)
	}
	for i := range 20 {
		if !strings.Contains(lines[i], fmt.Sprintf("%s/p%d", dev, i)) {
			t.Fatalf("Proton C line %d: %q, want %s/p%d", i, lines[i], dev, i)
		}
	}
	waitDepth(t, b, queue, 0, 20*time.Second)

	// The uplink goes down: the device's link stays attached and gets nothing; once the
	// cloud is back, the receiver upstream attaches again and the same link gets what
	// the cloud sends.
	conn, rcv = directDevice(t, ctx, g.addr, dev, 10)
	defer conn.Close()
	waitMetric(t, g, "shadowgw_direct_commands_links_up", 1, 20*time.Second)
	b.Stop()
	waitMetric(t, g, "shadowgw_uplink_up", 0, 30*time.Second)
	waitMetric(t, g, "shadowgw_direct_commands_links_up", 0, 10*time.Second)
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	if m, err := rcv.Receive(rctx, nil); err == nil || rctx.Err() == nil {
		t.Fatalf("while the uplink is down the device got %v, %v; want nothing, the link attached", m, err)
	}
	rcancel()
	b.Start()
	waitMetric(t, g, "shadowgw_direct_commands_links_up", 1, time.Minute)
	b.Send(t, "/queue/"+queue, amqp.NewMessage([]byte(dev+"/after")))
	got = receiveN(t, ctx, rcv, 1)
	if string(got[0].GetData()) != dev+"/after" {
		t.Fatalf("after the outage: %q", got[0].GetData())
	}
	if err := rcv.AcceptMessage(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, b, queue, 0, 20*time.Second)
}

// directDevice attaches a go-amqp command receiver for dev with credit.
func directDevice(t *testing.T, ctx context.Context, addr, dev string, credit int32) (*amqp.Conn, *amqp.Receiver) {
	t.Helper()
	conn, err := amqp.Dial(ctx, "amqp://"+addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: dev})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sess.NewReceiver(ctx, "command/"+dev, &amqp.ReceiverOptions{Credit: credit})
	if err != nil {
		t.Fatal(err)
	}
	return conn, r
}

func receiveN(t *testing.T, ctx context.Context, r *amqp.Receiver, n int) []*amqp.Message {
	t.Helper()
	var out []*amqp.Message
	for len(out) < n {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		m, err := r.Receive(rctx, nil)
		cancel()
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func wantBodies(t *testing.T, ms []*amqp.Message, dev string, want ...int) {
	t.Helper()
	for i, m := range ms {
		if w := fmt.Sprintf("%s/%d", dev, want[i]); string(m.GetData()) != w {
			t.Fatalf("message %d: %q, want %q", i, m.GetData(), w)
		}
	}
}

func waitDepth(t *testing.T, b *cloudtest.Broker, queue string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := b.QueueDepth(t, queue)
		if d == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d after %v, want %d", queue, d, timeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Issue 14, test 4 through the Proton test server in relay mode: the device's
// outcomes reach the cloud SENDER's deliveries (accepted, rejected with the device's
// error, modified with its fields); with no device nothing is taken; a device that
// goes with a delivery unsettled has it released upstream (the sender's outcome).
func TestDirectCommandsRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start the Proton test server")
	}
	s := cloudtest.StartProton(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "shadowgw.conf")
	text := "[edge]\nallow-anonymous = true\n[uplink]\nreconnect-min = 100ms\nreconnect-max = 1s\n[metrics]\nlisten = " + freeAddr(t) + "\n" +
		"[commands]\ndirect = dr-*\ndirect-source = " + cloudtest.RelayPrefix + "{device}\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"), "--uplink", s.URL, "--uplink-ca", s.CAFile)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const dev = "dr-1"
	address := cloudtest.RelayPrefix + dev
	// The cloud application: a go-amqp sender, over TLS.
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cloud, err := amqp.Dial(ctx, s.URL, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(),
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	cs, err := cloud.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := cs.NewSender(ctx, address, nil)
	if err != nil {
		t.Fatal(err)
	}
	var receipts []amqp.SendReceipt
	send := func(i int) {
		t.Helper()
		r, err := snd.SendWithReceipt(ctx, amqp.NewMessage(fmt.Appendf(nil, "%s/%d", dev, i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
	}
	for i := range 4 {
		send(i)
	}
	s.WaitEvent(t, 10*time.Second, "4 held", func(e []cloudtest.Event) bool { return cloudtest.Count(e, "held", address) == 4 })
	// No device: nothing is taken (no relay receiver attaches), though the uplink is up.
	waitMetric(t, g, "shadowgw_uplink_up", 1, 30*time.Second)
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := cloudtest.Count(s.Events(), "relay-attached", address); n != 0 {
			t.Fatalf("a receiver attached upstream with no device attached")
		}
	}

	conn, rcv := directDevice(t, ctx, g.addr, dev, 10)
	got := receiveN(t, ctx, rcv, 4)
	wantBodies(t, got, dev, 0, 1, 2, 3)
	if err := rcv.AcceptMessage(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if err := rcv.RejectMessage(ctx, got[1], &amqp.Error{Condition: "app:bad-command", Description: "no such setting"}); err != nil {
		t.Fatal(err)
	}
	if err := rcv.ModifyMessage(ctx, got[2], &amqp.ModifyMessageOptions{DeliveryFailed: true, UndeliverableHere: true}); err != nil {
		t.Fatal(err)
	}
	wait := func(i int) amqp.DeliveryState {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		st, err := receipts[i].Wait(wctx)
		if err != nil {
			t.Fatalf("outcome of message %d: %v", i, err)
		}
		return st
	}
	if st, ok := wait(0).(*amqp.StateAccepted); !ok {
		t.Errorf("message 0: %T, want accepted", st)
	}
	if st, ok := wait(1).(*amqp.StateRejected); !ok || st.Error == nil || st.Error.Condition != "app:bad-command" || st.Error.Description != "no such setting" {
		t.Errorf("message 1: %+v, want rejected app:bad-command: no such setting", wait(1))
	}
	if st, ok := wait(2).(*amqp.StateModified); !ok || !st.DeliveryFailed || !st.UndeliverableHere {
		t.Errorf("message 2: %+v, want modified, delivery-failed, undeliverable-here", wait(2))
	}
	// The device goes with message 3 unsettled: the gateway releases it upstream, and
	// the relay passes that to the sender, which sends it again.
	conn.Close()
	if st, ok := wait(3).(*amqp.StateReleased); !ok {
		t.Errorf("message 3: %T, want released when the device went", st)
	}
	s.WaitEvent(t, 20*time.Second, "the relay receiver detached", func(e []cloudtest.Event) bool {
		return cloudtest.Count(e, "relay-detached", address) == 1
	})
	send(3)
	receipts[3] = receipts[4]
	conn, rcv = directDevice(t, ctx, g.addr, dev, 10)
	defer conn.Close()
	got = receiveN(t, ctx, rcv, 1)
	wantBodies(t, got, dev, 3)
	if err := rcv.AcceptMessage(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if st, ok := wait(3).(*amqp.StateAccepted); !ok {
		t.Errorf("message 3: %T, want accepted after the second attach", st)
	}
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="released"}`, 1, 10*time.Second)
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="accepted"}`, 2, 10*time.Second)
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="rejected"}`, 1, 10*time.Second)
	waitMetric(t, g, `shadowgw_direct_commands_outcomes_total{outcome="modified"}`, 1, 10*time.Second)
	waitMetric(t, g, "shadowgw_direct_commands_in_flight", 0, 10*time.Second)
	// /status lists the direct commands beside the direct routes.
	var found bool
	for _, r := range statusOf(t, g.metrics).Direct {
		if r.Name == directCommandsReport {
			found = true
			if r.Targets != 1 || r.Ready != 1 || r.Accepted != 2 || r.Rejected != 1 || r.Modified != 1 || r.Released != 1 {
				t.Errorf("status of the direct commands: %+v", r)
			}
		}
	}
	if !found {
		t.Errorf("no %q in /status: %+v", directCommandsReport, statusOf(t, g.metrics).Direct)
	}
}
