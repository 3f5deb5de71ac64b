package edge

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/devicetest"
)

// captureClients are the real clients whose bytes seed FuzzConn.
var captureClients = []struct {
	name string
	run  func(t *testing.T, addr string)
}{
	{"goamqp-plain", func(t *testing.T, addr string) {
		goAMQPSend(t, addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("dev", "secret")}, nil, 3, 100)
	}},
	{"goamqp-nosasl-settled-multiframe", func(t *testing.T, addr string) {
		goAMQPSend(t, addr, &amqp.ConnOptions{MaxFrameSize: 1024}, &amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()}, 2, 3000)
	}},
	{"python-anonymous", func(t *testing.T, addr string) {
		devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Count: 3, Size: 50, SASL: devicetest.Anonymous})
	}},
	{"python-plain-blocking", func(t *testing.T, addr string) {
		devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Count: 2, Size: 50, SASL: devicetest.Plain, User: "dev", Password: "secret", Style: devicetest.Blocking})
	}},
	{"python-wrong-password", func(t *testing.T, addr string) {
		devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Count: 1, Size: 10, SASL: devicetest.Plain, User: "dev", Password: "nope"})
	}},
	{"protonc-send", func(t *testing.T, addr string) {
		host, port, _ := strings.Cut(addr, ":")
		devicetest.RunProtonSend(t, devicetest.ProtonSend(t), host, port, "seeds", 3)
	}},
}

func goAMQPSend(t *testing.T, addr string, copts *amqp.ConnOptions, sopts *amqp.SenderOptions, n, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := amqp.Dial(ctx, "amqp://"+addr, copts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "seeds", sopts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m := amqp.NewMessage([]byte(strings.Repeat("x", size)))
		m.ApplicationProperties = map[string]any{"i": int64(i)}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	snd.Close(ctx)
}
