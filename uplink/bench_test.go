package uplink

import (
	"context"
	"flag"
	"fmt"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// BenchmarkDrain measures how fast a backlog of 10,000 messages with 100-byte bodies
// drains from a store with fsync to a local RabbitMQ over TLS, from Run to an empty
// store; one op is one backlog. Run it with
//
//	go test ./uplink -run '^$' -bench Drain -benchtime 5x
func BenchmarkDrain(b *testing.B) {
	const n = 10000
	broker := cloudtest.StartRabbitMQ(b)
	for _, inFlight := range []int{1, 32, DefaultInFlight, 1024} {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			payloads := make([][]byte, n)
			for i := range payloads {
				payloads[i] = encode(b, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: uint64(i)}, Data: [][]byte{make([]byte, 100)}})
			}
			b.SetBytes(n * 100)
			var total time.Duration
			for i := range b.N {
				b.StopTimer()
				st := openStore(b, true)
				appendPayloads(b, st, fmt.Sprintf("bench-%d-%d", inFlight, i), "dev", payloads...)
				cfg, _ := testConfig(b, broker)
				cfg.InFlight = inFlight
				u, err := New(cfg, st, nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- u.Run(ctx) }()
				for st.Stats().Messages > 0 {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				b.StopTimer()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
		})
	}
}

var backlogSize = flag.Int("uplink.backlog", 10000, "messages in BenchmarkBacklog's backlog")

// BenchmarkBacklog drains a backlog of -uplink.backlog messages (100-byte bodies) from
// a store with fsync to a local RabbitMQ over TLS with the default settings, and
// reports the drain rate, the time from Run to the first accepted message (TLS, SASL,
// begin, attach and one round trip) and the uplink process's CPU time (user+system,
// getrusage) per 1,000 messages. Run it with
//
//	go test ./uplink -run '^$' -bench Backlog -benchtime 1x -uplink.backlog 100000
func BenchmarkBacklog(b *testing.B) {
	n := *backlogSize
	broker := cloudtest.StartRabbitMQ(b)
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = encode(b, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: uint64(i)}, Data: [][]byte{make([]byte, 100)}})
	}
	b.SetBytes(int64(n) * 100)
	var total, first, cpu time.Duration
	for i := range b.N {
		b.StopTimer()
		st := openStore(b, true)
		appendPayloads(b, st, fmt.Sprintf("backlog-%d", i), "dev", payloads...)
		cfg, _ := testConfig(b, broker)
		u, err := New(cfg, st, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		cpu0 := cpuTime(b)
		b.StartTimer()
		start := time.Now()
		go func() { done <- u.Run(ctx) }()
		for u.Status().Forwarded == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		first += time.Since(start)
		for st.Stats().Messages > 0 {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		cpu += cpuTime(b) - cpu0
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-to-first")
	b.ReportMetric(float64(cpu.Microseconds())/1000/(float64(n*b.N)/1000), "cpu-ms/1000msgs")
}

// cpuTime returns this process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
