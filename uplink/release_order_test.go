package uplink

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestRabbitMQReleaseOrder pins down the cloud behaviour the command receiver's
// order rests on (receiver.go): RabbitMQ puts a released message (§3.4.4), and an
// unsettled one of a session that ends, back at its place in the queue, whatever
// the order of the releases; the next link gets them first, in order.
func TestRabbitMQReleaseOrder(t *testing.T) {
	b := cloudtest.StartRabbitMQ(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		release []int // which of the six received are released, in this order; the rest stay unsettled
	}{
		{"released in order", []int{0, 1, 2, 3, 4, 5}},
		{"released backwards", []int{5, 4, 3, 2, 1, 0}},
		{"some released, the others left to the session's end", []int{3, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fmt.Sprintf("/queue/release-order-%d", time.Now().UnixNano())
			var msgs []*amqp.Message
			for i := 0; i < 8; i++ {
				msgs = append(msgs, amqp.NewMessage([]byte(fmt.Sprint(i))))
			}
			b.Send(t, addr, msgs...)
			conn := b.Dial(t)
			receive := func(n uint32) (*amqp.Session, *amqp.Receiver, []*amqp.Message) {
				sess, err := conn.NewSession(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Credit: -1, SourceDurability: cloudtest.QueueDurability,
					SettlementMode: amqp.ReceiverSettleModeFirst.Ptr()})
				if err != nil {
					t.Fatal(err)
				}
				if err := rcv.IssueCredit(n); err != nil {
					t.Fatal(err)
				}
				var got []*amqp.Message
				for len(got) < int(n) {
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					m, err := rcv.Receive(rctx, nil)
					cancel()
					if err != nil {
						t.Fatalf("receive %d of %d: %v", len(got)+1, n, err)
					}
					got = append(got, m)
				}
				return sess, rcv, got
			}
			sess, rcv, got := receive(6)
			for _, i := range tc.release {
				if err := rcv.ReleaseMessage(ctx, got[i]); err != nil {
					t.Fatal(err)
				}
			}
			// RabbitMQ answers at once when idle; under a loaded machine it took
			// more than 5 s once and did not answer within 30 s twice. The
			// receiver then ends the connection (receiver.go); so does this test:
			// both give the unsettled ones back.
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			if err := sess.Close(cctx); err != nil {
				t.Logf("ending the session: %v after %v; ending the connection instead", err, time.Since(start))
				conn.Close()
				conn = b.Dial(t)
			}
			cancel()
			sess, rcv, got = receive(8)
			var order []string
			for _, m := range got {
				order = append(order, string(m.GetData()))
				_ = rcv.AcceptMessage(ctx, m)
			}
			if fmt.Sprint(order) != "[0 1 2 3 4 5 6 7]" {
				t.Errorf("after the releases %v: the next link got %v, want the queue's order", tc.release, order)
			}
			sess.Close(ctx)
		})
	}
}

// TestCommandsOrderAfterRelease: with the devices' queues full, the receiver
// releases commands upstream and takes them again as devices make room; each
// device still gets its commands in the cloud's order (issue 13's open point).
func TestCommandsOrderAfterRelease(t *testing.T) {
	b := cloudtest.StartRabbitMQ(t)
	st := openStoreWith(t, store.Options{NoSync: true, Commands: store.CommandOptions{MaxPerDevice: 5}})
	cfg, _ := testConfig(t, b)
	cfg.Commands = "/queue/gw-commands-order"
	want := map[string]int{"d0": 40, "d1": 14}
	var msgs []*amqp.Message
	for i := 0; i < 40; i++ {
		msgs = append(msgs, commandMessage("d0", i, i%2 == 0))
		if i%3 == 0 {
			msgs = append(msgs, commandMessage("d1", i/3, i%2 == 1))
		}
	}
	b.Send(t, cfg.Commands, msgs...)
	log, logs := newLogger()
	up := startUplinkWithCommands(t, cfg, st, log)
	// Both queues fill up and commands are released before any device wakes up.
	checkFor(t, 30*time.Second, func() bool { return st.CommandStats().Messages == 10 && up.CommandStats().Released > 0 },
		func() string {
			return fmt.Sprintf("store %+v, receiver %+v\n%s", st.CommandStats(), up.CommandStats(), logs)
		})

	// The devices: each takes its two oldest commands at a time, as a device with
	// credit 2 that accepts them would, and waits for a wake-up when it has none.
	wake := map[string]*store.Watch{"d0": st.WatchCommands("d0"), "d1": st.WatchCommands("d1")}
	defer wake["d0"].Stop()
	defer wake["d1"].Stop()
	got := map[string][]string{}
	deadline := time.Now().Add(90 * time.Second)
	for len(got["d0"]) < want["d0"] || len(got["d1"]) < want["d1"] {
		if time.Now().After(deadline) {
			left := b.Drain(t, "/amq/queue/gw-commands-order", time.Second)
			var names []string
			for _, m := range left {
				names = append(names, string(m.GetData()))
			}
			t.Fatalf("after 90 s: devices got %v; left in the cloud %v; store %+v, receiver %+v\n%s",
				got, names, st.CommandStats(), up.CommandStats(), logs)
		}
		took := 0
		for _, dev := range []string{"d0", "d1"} {
			cs, err := st.ReadCommands(dev, 0, 2)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, len(cs))
			for _, c := range cs {
				var m amqp.Message
				if err := m.UnmarshalBinary(c.Payload); err != nil {
					t.Fatal(err)
				}
				got[dev] = append(got[dev], string(m.GetData()))
				st.DeleteCommand(dev, c.Seq, func(err error) { done <- err })
			}
			for range cs {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			took += len(cs)
		}
		if took == 0 {
			select {
			case <-wake["d0"].C:
			case <-wake["d1"].C:
			case <-time.After(time.Until(deadline)):
			}
		}
	}
	for dev, n := range want {
		var w []string
		for i := 0; i < n; i++ {
			w = append(w, fmt.Sprintf("%s/%d", dev, i))
		}
		if fmt.Sprint(got[dev]) != fmt.Sprint(w) {
			t.Errorf("%s got %v\nwant %v", dev, got[dev], w)
		}
	}
	// Accepted upstream once each (the counter follows the commit the devices saw).
	checkFor(t, 10*time.Second, func() bool { return up.CommandStats().Received == 54 },
		func() string { return fmt.Sprintf("receiver %+v, want 54 received", up.CommandStats()) })
	t.Logf("receiver: %+v", up.CommandStats())
	b.ExpectEmpty(t, cfg.Commands, time.Second)
}
