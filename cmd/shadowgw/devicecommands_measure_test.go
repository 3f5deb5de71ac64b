package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestMeasureDirectCommands compares cloud → device direct commands with stored ones
// in one run, through RabbitMQ over TLS: the rate of a batch sent at once (pipelined
// by the cloud application) and the latency from the cloud send to the device's
// receive, one message at a time. Rounds alternate direct and stored.
// SHADOWGW_MEASURE_DIRECT_COMMANDS=N runs it with N messages per batch.
func TestMeasureDirectCommands(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SHADOWGW_MEASURE_DIRECT_COMMANDS"))
	if n <= 0 {
		t.Skip("set SHADOWGW_MEASURE_DIRECT_COMMANDS=N to measure")
	}
	b := cloudtest.StartRabbitMQ(t)
	// A budget the batch fits in: released stored commands may come back out of order
	// from RabbitMQ, which is not what is measured here.
	args, _ := commandArgs(t, b, t.TempDir(), directCommandsConf+"max-per-device = 1000000\nmax-bytes-per-device = 1GiB\n")
	g := startGateway(t, args...)
	waitMetric(t, g, "shadowgw_uplink_up", 1, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	type kind struct {
		name, dev, address string
		stored             bool
	}
	kinds := []kind{
		{"direct", "dd-m", "/queue/c2d-dd-m", false},
		{"stored", "sm-m", deviceCmdQueue, true},
	}
	conn := b.Dial(t)
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	senders := map[string]*amqp.Sender{}
	for _, k := range kinds {
		if senders[k.name], err = sess.NewSender(ctx, k.address, &amqp.SenderOptions{TargetDurability: cloudtest.QueueDurability}); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(k kind, i int) *amqp.Message {
		m := amqp.NewMessage(make([]byte, 100))
		m.ApplicationProperties = map[string]any{"device_id": k.dev, "i": int64(i), "sent": time.Now().UnixNano()}
		return m
	}
	for round := range 2 {
		for _, k := range kinds {
			_, rcv := directDevice(t, ctx, g.addr, k.dev, 200)
			// Rate: n sent at once.
			start := time.Now()
			var receipts []amqp.SendReceipt
			for i := range n {
				r, err := senders[k.name].SendWithReceipt(ctx, msg(k, i), nil)
				if err != nil {
					t.Fatal(err)
				}
				receipts = append(receipts, r)
			}
			for i := range n {
				m := receiveN(t, ctx, rcv, 1)[0]
				if got := m.ApplicationProperties["i"]; got != int64(i) {
					t.Fatalf("%s: message %d arrived as %v", k.name, i, got)
				}
				if err := rcv.AcceptMessage(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			for _, r := range receipts {
				if _, err := r.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// Latency: one at a time.
			var lat []time.Duration
			for i := range 200 {
				if err := senders[k.name].Send(ctx, msg(k, i), nil); err != nil {
					t.Fatal(err)
				}
				m := receiveN(t, ctx, rcv, 1)[0]
				lat = append(lat, time.Since(time.Unix(0, m.ApplicationProperties["sent"].(int64))))
				if err := rcv.AcceptMessage(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(lat)
			t.Logf("round %d %s: %d in %v = %.0f msg/s; latency p50 %v p99 %v (load %s)", round, k.name, n,
				elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
				lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond), loadavg())
			rcv.Close(ctx)
		}
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	var a string
	fmt.Sscan(string(b), &a)
	return a
}
