package edge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// TestMeasureCommands measures the sending side for the closing note of issue 13 (run
// with SHADOWGW_MEASURE=1; it asserts nothing about speed): store → device throughput
// with 1 and 16 devices, the receive latency of an online device, and the memory of a
// store holding 1,000 devices × 100 commands.
func TestMeasureCommands(t *testing.T) {
	if os.Getenv("SHADOWGW_MEASURE") == "" {
		t.Skip("set SHADOWGW_MEASURE=1 to measure")
	}
	big := store.CommandOptions{MaxPerDevice: 1 << 20, MaxBytesPerDevice: 1 << 30, MaxMessages: 1 << 20, MaxBytes: 1 << 30}
	for _, devices := range []int{1, 16} {
		st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{Commands: big})
		if err != nil {
			t.Fatal(err)
		}
		per := 16000 / devices
		payload := make([]byte, 100)
		for d := 0; d < devices; d++ {
			var wg sync.WaitGroup
			for i := 0; i < per; i++ {
				wg.Add(1)
				st.AppendCommandAsync(&store.Command{Device: fmt.Sprint("m", d), Payload: append([]byte{0x00, 0x53, 0x75, 0xa0, 100}, payload...)},
					func(err error) {
						if err != nil {
							t.Error(err)
						}
						wg.Done()
					})
			}
			wg.Wait()
		}
		srv := New(Config{AllowAnonymous: true}, &memSink{}, nil)
		srv.SetCommands(storeCommands{st}, nil)
		addr := serveOn(t, srv)
		start := time.Now()
		var wg sync.WaitGroup
		for d := 0; d < devices; d++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, r, err := commandReceiver(t, addr, amqp.SASLTypeAnonymous(), fmt.Sprint("command/m", d), &amqp.ReceiverOptions{Credit: -1})
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				// Manual credit: go-amqp's automatic top-up can stall (seen upstream too).
				r.IssueCredit(100)
				for i := 0; i < per; i++ {
					m, err := r.Receive(context.Background(), nil)
					if err != nil {
						t.Error(err)
						return
					}
					r.AcceptMessage(context.Background(), m)
					if i%50 == 49 {
						r.IssueCredit(50)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		waitFor(t, func() bool { return st.CommandStats().Messages == 0 }, "not all deleted")
		t.Logf("store → device, %d device(s), %d commands of 105 B, credit 100, fsync on: %.0f commands/s (%v)",
			devices, devices*per, float64(devices*per)/el.Seconds(), el.Round(time.Millisecond))
		st.Close()
	}

	// Latency of an online device: from the append call to the arrival.
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{AllowAnonymous: true}, &memSink{}, nil)
	srv.SetCommands(storeCommands{st}, nil)
	addr := serveOn(t, srv)
	c, r, err := commandReceiver(t, addr, amqp.SASLTypeAnonymous(), "command/live", &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for i := 0; i < 1000; i++ {
		start := time.Now()
		st.AppendCommandAsync(&store.Command{Device: "live", Payload: []byte{0x00, 0x53, 0x75, 0xa0, 1, 'x'}}, func(error) {})
		m, err := r.Receive(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		r.AcceptMessage(context.Background(), m)
	}
	c.Close()
	slices.Sort(lat)
	t.Logf("online device receive latency (append → arrival, fsync on), 1000 commands: p50 %v, p99 %v, max %v",
		lat[500].Round(time.Microsecond), lat[990].Round(time.Microsecond), lat[999].Round(time.Microsecond))
	st.Close()

	// Memory: 1,000 devices × 100 commands of 100 B, reopened.
	path := filepath.Join(t.TempDir(), "big.db")
	st, err = store.Open(path, store.Options{NoSync: true, Commands: store.CommandOptions{MaxMessages: 200000, MaxBytes: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for d := 0; d < 1000; d++ {
		for i := 0; i < 100; i++ {
			wg.Add(1)
			st.AppendCommandAsync(&store.Command{Device: fmt.Sprintf("dev-%04d", d), Payload: make([]byte, 100)}, func(err error) {
				if err != nil {
					t.Error(err)
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	st.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	st, err = store.Open(path, store.Options{Commands: store.CommandOptions{MaxMessages: 200000, MaxBytes: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	open := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	fi, _ := os.Stat(path)
	qs, _ := st.CommandQueues()
	t.Logf("1,000 devices × 100 commands (100 B): file %.1f MiB, Open %v, Go heap held by the open store %.2f MiB, %d queues listed, stats %+v",
		float64(fi.Size())/(1<<20), open.Round(time.Millisecond), float64(after.HeapInuse-min(after.HeapInuse, before.HeapInuse))/(1<<20), len(qs), st.CommandStats())
	st.Close()
}
