package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// TestCrashGateway kills the gateway with SIGKILL while go-amqp devices send to it,
// again and again, and checks after every kill, in the store file, that every message
// the gateway acknowledged is there, in each device's order, and that the store's
// counters (totals and per route: half the devices send to an alarms route) hold.
func TestCrashGateway(t *testing.T) {
	cycles := 20
	if testing.Short() {
		cycles = 5
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "shadowgw.conf")
	if err := os.WriteFile(conf, []byte("[store]\nmin-free = 0\n[metrics]\nlisten = "+freeAddr(t)+"\n"+
		"[route \"alarms\"]\naddresses = alarms/*\npriority = 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--config", conf, "--data", data)
	const devices = 4
	acked := map[string][]int{}
	total := 0
	start := time.Now()
	for cycle := range cycles {
		if cycle > 0 {
			g.start()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		devs := make([]*device, devices)
		for i := range devs {
			devs[i] = &device{id: fmt.Sprintf("dev-%d", i)}
			address := "telemetry"
			if i%2 == 1 {
				address = "alarms/" + devs[i].id
			}
			wg.Go(func() { devs[i].send(ctx, g.addr, address, cycle*1_000_000, 1_000_000, 200, 64) })
		}
		time.Sleep(time.Duration(150+rand.IntN(300)) * time.Millisecond) // load, then a power cut
		g.kill()
		wg.Wait()
		cancel()
		n := 0
		for _, d := range devs {
			acked[d.id] = append(acked[d.id], d.accepted...)
			n += len(d.accepted)
		}
		total += n
		stored := storedByDevice(t, filepath.Join(data, storeFile))
		for id, want := range acked {
			got := stored[id]
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("cycle %d: %s: stored seq %d after %d", cycle, id, got[i], got[i-1])
				}
			}
			have := make(map[int]bool, len(got))
			for _, s := range got {
				have[s] = true
			}
			for _, s := range want {
				if !have[s] {
					t.Fatalf("cycle %d: %s: acknowledged message %d lost (%d stored, %d acknowledged)", cycle, id, s, len(got), len(want))
				}
			}
		}
		if n == 0 {
			t.Logf("cycle %d: no message acknowledged before the kill", cycle)
		}
	}
	t.Logf("%d kill cycles in %v: %d acknowledged messages, all stored in order", cycles, time.Since(start).Round(time.Millisecond), total)
}

// crashRoutes are the routes of TestCrashGateway's configuration.
var crashRoutes = []store.Route{{Name: "alarms", Addresses: []string{"alarms/*"}, Priority: 10}}

// storedByDevice opens the store file (the gateway is dead) and returns each device's
// message numbers in store order.
func storedByDevice(t *testing.T, path string) map[string][]int {
	t.Helper()
	st, err := store.Open(path, store.Options{NoSync: true, Routes: crashRoutes})
	if err != nil {
		t.Fatalf("open the store after the kill: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("store check after the kill: %v", err)
	}
	if r := st.Stats().Routes; len(r) != 2 || r[0].Name != "alarms" || r[0].Orphan {
		t.Fatalf("routes after the kill %+v, want alarms and default", r)
	}
	out := map[string][]int{}
	var after uint64
	for {
		msgs, err := st.Read(after, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			var am amqp.Message
			if err := am.UnmarshalBinary(m.Payload); err != nil {
				t.Fatalf("stored message %d: %v", m.Seq, err)
			}
			id, _ := am.ApplicationProperties["device"].(string)
			seq, _ := am.ApplicationProperties["seq"].(int64)
			out[id] = append(out[id], int(seq))
		}
		after = msgs[len(msgs)-1].Seq
	}
}
