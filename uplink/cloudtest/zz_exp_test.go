package cloudtest

import (
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

func TestExp(t *testing.T) {
	b := StartRabbitMQ(t)
	for round := 0; round < 30; round++ {
		var msgs []*amqp.Message
		for i := 0; i < 2000; i++ {
			msgs = append(msgs, amqp.NewMessage([]byte("x")))
		}
		b.Send(t, "/queue/x", msgs...)
		start := time.Now()
		b.Receive(t, "/queue/x", 2000, 10*time.Second)
		t.Log(time.Since(start))
		b.ExpectEmpty(t, "/queue/x", 300*time.Millisecond)
	}
}
