package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// commandMessage is a command for device dev, named by application property (i even)
// or by its to address (i odd).
func commandMessage(dev string, i int, byTo bool) *amqp.Message {
	m := amqp.NewMessage([]byte(fmt.Sprintf("%s/%d", dev, i)))
	m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("%s-%d", dev, i)}
	if byTo {
		to := "command/tenant/" + dev
		m.Properties.To = &to
	} else {
		m.ApplicationProperties = map[string]any{DeviceIDProperty: dev}
	}
	return m
}

func checkDeviceQueue(t *testing.T, st *store.Store, dev string, want int) {
	t.Helper()
	cs, err := st.ReadCommands(dev, 0, 10*want+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != want {
		t.Fatalf("%s: %d commands queued, want %d", dev, len(cs), want)
	}
	for i, c := range cs {
		var m amqp.Message
		if err := m.UnmarshalBinary(c.Payload); err != nil {
			t.Fatalf("%s: command %d: %v", dev, i, err)
		}
		if got, w := string(m.GetData()), fmt.Sprintf("%s/%d", dev, i); got != w {
			t.Fatalf("%s: command %d is %q, want %q", dev, i, got, w)
		}
	}
}

// Issue 13, test 1 (cloud side): commands for four offline devices, named by
// device_id or by to, are all taken from the cloud queue, committed in order per
// device; a command without a device id is rejected upstream.
func TestCommandsFromRabbitMQ(t *testing.T) {
	b := cloudtest.StartRabbitMQ(t)
	st := openStore(t, true)
	cfg, _ := testConfig(t, b)
	cfg.Commands = "/queue/gw-commands"
	const perDevice = 250
	devs := []string{"d0", "d1", "d2", "d3"}
	var msgs []*amqp.Message
	for i := 0; i < perDevice; i++ {
		for k, d := range devs {
			msgs = append(msgs, commandMessage(d, i, (i+k)%2 == 1))
		}
	}
	msgs = append(msgs, amqp.NewMessage([]byte("for nobody")))
	b.Send(t, cfg.Commands, msgs...)

	log, logs := newLogger()
	start := time.Now()
	up := startUplinkWithCommands(t, cfg, st, log)
	checkFor(t, 60*time.Second, func() bool { return st.CommandStats().Messages == 4*perDevice && up.CommandStats().Rejected == 1 },
		func() string {
			return fmt.Sprintf("store %+v, receiver %+v\n%s", st.CommandStats(), up.CommandStats(), logs)
		})
	el := time.Since(start)
	t.Logf("cloud queue → store: %d commands in %v (connect included): %.0f commands/s", 4*perDevice+1, el.Round(time.Millisecond), float64(4*perDevice+1)/el.Seconds())
	t.Logf("receiver %+v store %+v", up.CommandStats(), st.CommandStats())
	for _, d := range devs {
		checkDeviceQueue(t, st, d, perDevice)
	}
	if s := up.CommandStats(); s.Received != 4*perDevice || !s.Attached {
		t.Fatalf("receiver stats: %+v", s)
	}
	b.ExpectEmpty(t, cfg.Commands, time.Second)
	if len(logs.lines("invalid-field")) == 0 && len(logs.lines("device_id")) == 0 {
		t.Errorf("no log line for the rejected command:\n%s", logs)
	}
}

// Issue 13, test 6: a full device queue leaves the command in the cloud (released);
// it arrives once there is room.
func TestCommandsReleasedWhenFull(t *testing.T) {
	b := cloudtest.StartRabbitMQ(t)
	st := openStoreWith(t, store.Options{NoSync: true, Commands: store.CommandOptions{MaxPerDevice: 5}})
	cfg, _ := testConfig(t, b)
	cfg.Commands = "/queue/gw-commands-full"
	var msgs []*amqp.Message
	for i := 0; i < 8; i++ {
		msgs = append(msgs, commandMessage("d0", i, i%2 == 0))
	}
	b.Send(t, cfg.Commands, msgs...)
	log, logs := newLogger()
	up := startUplinkWithCommands(t, cfg, st, log)
	checkFor(t, 30*time.Second, func() bool { return st.CommandStats().Messages == 5 && up.CommandStats().Released > 0 },
		func() string {
			return fmt.Sprintf("store %+v, receiver %+v\n%s", st.CommandStats(), up.CommandStats(), logs)
		})
	cs, _ := st.ReadCommands("d0", 0, 10)
	done := make(chan error, 3)
	for _, c := range cs[:3] {
		st.DeleteCommand("d0", c.Seq, func(err error) { done <- err })
	}
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 30*time.Second, func() bool { return st.CommandStats().Messages == 5 && up.CommandStats().Received == 8 },
		func() string {
			return fmt.Sprintf("store %+v, receiver %+v\n%s", st.CommandStats(), up.CommandStats(), logs)
		})
	// Every command arrives, in the cloud's order: the released ones first.
	cs, _ = st.ReadCommands("d0", 0, 10)
	var got []string
	for _, c := range cs {
		var m amqp.Message
		_ = m.UnmarshalBinary(c.Payload)
		got = append(got, string(m.GetData()))
	}
	if want := "[d0/3 d0/4 d0/5 d0/6 d0/7]"; fmt.Sprint(got) != want {
		t.Errorf("d0's queue: got %v, want %s", got, want)
	}
	b.ExpectEmpty(t, cfg.Commands, time.Second)
}

// startUplinkWithCommands runs an Uplink that also receives commands into st until
// the end of the test.
func startUplinkWithCommands(t *testing.T, cfg Config, st *store.Store, log *slog.Logger) *Uplink {
	t.Helper()
	u, err := New(cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	u.SetCommands(st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return within 15s of cancel")
		}
	})
	return u
}
