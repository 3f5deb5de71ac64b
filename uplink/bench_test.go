package uplink

import (
	"context"
	"fmt"
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
