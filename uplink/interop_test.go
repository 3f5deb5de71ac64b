package uplink

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// The interop matrix: five device stacks at their default settings send through a
// gateway (edge, store, uplink, as cmd/shadowgw wires them) to each of three cloud
// peers at theirs, over TLS: RabbitMQ 3.10 (SASL PLAIN), the Proton test server
// (SASL ANONYMOUS: Debian's Proton has no Cyrus SASL, so it cannot check a
// password) and a small broker on rhea (SASL PLAIN). Every message must arrive once,
// with its body, application-properties and source annotation intact. One gateway
// and one broker serve each column.

// matrixCount is the number of messages each device sends in each column.
const matrixCount = 300

// matrixSize is the body size of the devices' messages.
const matrixSize = 100

// matrixDevices are the device stacks by their identity at the gateway: the
// container-id, since they connect anonymously. Proton C's send.c announces its
// program name.
var matrixDevices = []string{"send", "proton-python", "go-amqp", "uamqp", "rhea"}

// arrived is a message as a cloud peer received it, its fields as text.
type arrived struct {
	address     string
	id, body    string // body: a data section in hex, another body as text
	props, anno map[string]string
}

// storeSink hands the edge's deliveries to the store, as cmd/shadowgw does.
type storeSink struct{ st *store.Store }

func (s storeSink) Store(d *edge.Delivery, done func(error)) {
	s.st.AppendAsync(&store.Message{Address: d.Address, Source: d.Source, Received: d.Received, Payload: d.Payload,
		Expires: d.Info.ExpiresAt(d.Received)}, done)
}

func (s storeSink) Full(address string) bool { return s.st.FullFor(address) }

func (s storeSink) Room() (<-chan struct{}, func()) {
	w := s.st.WatchRoom()
	return w.C, w.Stop
}

// startGateway runs an edge server on a loopback port, a store and an uplink with cfg
// until the end of the test, and returns the edge's address.
func startGateway(t *testing.T, cfg Config) (string, *store.Store) {
	t.Helper()
	st := openStore(t, false)
	startUplink(t, cfg, st, interopLog(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := edge.New(edge.Config{AllowAnonymous: true}, storeSink{st}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge Serve: %v", err)
		}
	})
	return ln.Addr().String(), st
}

// interopLog returns a logger whose lines are shown if the test fails.
func interopLog(t *testing.T) *slog.Logger {
	log, buf := newLogger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("uplink log:\n%s", buf.String())
		}
	})
	return log
}

// sendFromDevices runs each device of matrixDevices in turn, each sending
// matrixCount messages to address, and fails the test unless each got every outcome
// accepted.
func sendFromDevices(t *testing.T, gw, address string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(gw)
	for _, dev := range matrixDevices {
		start := time.Now()
		switch dev {
		case "send":
			out, err := devicetest.RunProtonSend(t, devicetest.ProtonSend(t), host, port, address, matrixCount)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d messages sent and acknowledged", matrixCount); strings.TrimSpace(out) != want {
				t.Fatalf("proton-c send printed %q, want %q", out, want)
			}
		case "proton-python":
			r := devicetest.Python(t, devicetest.PythonOptions{Addr: gw, Address: address, Count: matrixCount,
				Size: matrixSize, SASL: devicetest.Anonymous, Device: dev})
			checkReport(t, dev, r)
		case "go-amqp":
			sendGoAMQP(t, gw, address, dev)
		case "uamqp":
			r := devicetest.UAMQP(t, devicetest.UAMQPOptions{Addr: gw, Address: address, Count: matrixCount,
				Size: matrixSize, Device: dev})
			checkReport(t, dev, r)
		case "rhea":
			r := devicetest.Rhea(t, devicetest.RheaOptions{Addr: gw, Address: address, Count: matrixCount,
				Size: matrixSize, Device: dev})
			checkReport(t, dev, r)
		}
		t.Logf("%s: %d messages accepted by the gateway in %v", dev, matrixCount, time.Since(start).Round(time.Millisecond))
	}
}

func checkReport(t *testing.T, dev string, r devicetest.Result) {
	t.Helper()
	if r.Accepted != matrixCount || len(r.Errors) > 0 {
		t.Fatalf("%s device: report %+v, want %d accepted", dev, r, matrixCount)
	}
}

// sendGoAMQP sends like the other devices, with go-amqp at its defaults (no SASL,
// sender options nil); only its container-id is set, as its identity.
func sendGoAMQP(t *testing.T, gw, address, dev string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := amqp.Dial(ctx, "amqp://"+gw, &amqp.ConnOptions{ContainerID: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, address, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range matrixCount {
		m := amqp.NewMessage(devicetest.Body(i, matrixSize))
		m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("%s:%d", dev, i)}
		m.ApplicationProperties = map[string]any{"device": dev, "seq": int64(i)}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatalf("go-amqp send %d: %v", i, err)
		}
	}
}

// checkDevice checks that got holds the matrixCount messages of device dev, each
// once and intact, and nothing else.
func checkDevice(t *testing.T, dev string, got []arrived) {
	t.Helper()
	seen := map[string]int{}
	for _, a := range got {
		if src := a.anno[SourceAnnotation]; src != dev {
			t.Errorf("%s: message %q has %s %q, want %q", dev, a.id, SourceAnnotation, src, dev)
			continue
		}
		seen[a.id]++
		if seen[a.id] > 1 {
			t.Errorf("%s: message %q arrived %d times", dev, a.id, seen[a.id])
			continue
		}
		if dev == "send" {
			// Debian's send.c: message-id ulong n from 1, body {"sequence": n}, no
			// application-properties.
			if n, err := strconv.Atoi(a.id); err != nil || n < 1 || n > matrixCount || !strings.Contains(a.body, "sequence") || !strings.Contains(a.body, a.id) {
				t.Errorf("%s: message %q with body %q, want ids 1..%d and a body {sequence: id}", dev, a.id, a.body, matrixCount)
			}
			continue
		}
		seq, err := strconv.Atoi(number(a.props["seq"]))
		if err != nil || a.props["device"] != dev || a.id != fmt.Sprintf("%s:%d", dev, seq) {
			t.Errorf("%s: message %q has application-properties %v, want device %s and seq matching the id", dev, a.id, a.props, dev)
			continue
		}
		if want := hex.EncodeToString(devicetest.Body(seq, matrixSize)); a.body != want {
			t.Errorf("%s: message %q: body %s, want %s", dev, a.id, a.body, want)
		}
	}
	if len(seen) != matrixCount {
		t.Errorf("%s: %d distinct messages arrived, want %d", dev, len(seen), matrixCount)
	}
}

// number returns the digits of an integer as a peer printed it: "7", or "int32(7)"
// (Proton Python's text for an AMQP int, which uAMQP-C sends for a Python int).
func number(s string) string {
	s = strings.TrimSuffix(s, ")")
	if i := strings.LastIndexByte(s, '('); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// byDevice groups messages by the source annotation.
func byDevice(got []arrived) map[string][]arrived {
	out := map[string][]arrived{}
	for _, a := range got {
		out[a.anno[SourceAnnotation]] = append(out[a.anno[SourceAnnotation]], a)
	}
	return out
}

// fromAMQP turns messages read with go-amqp into arrived ones.
func fromAMQP(address string, msgs []*amqp.Message) []arrived {
	out := make([]arrived, len(msgs))
	for i, m := range msgs {
		a := arrived{address: address, props: map[string]string{}, anno: map[string]string{}}
		if m.Data != nil {
			a.body = hex.EncodeToString(m.GetData())
		} else {
			a.body = fmt.Sprint(m.Value)
		}
		if m.Properties != nil {
			a.id = fmt.Sprint(m.Properties.MessageID)
		}
		for k, v := range m.ApplicationProperties {
			a.props[k] = fmt.Sprint(v)
		}
		for k, v := range m.Annotations {
			a.anno[fmt.Sprint(k)] = fmt.Sprint(v)
		}
		out[i] = a
	}
	return out
}

// fromDeliveries turns the deliveries a test server recorded into arrived ones.
func fromDeliveries(ds []cloudtest.Delivery) []arrived {
	out := make([]arrived, len(ds))
	for i, d := range ds {
		out[i] = arrived{address: d.Address, id: d.ID, body: d.Body, props: d.Props, anno: d.Annotations}
	}
	return out
}

func TestInteropMatrix(t *testing.T) {
	total := matrixCount * len(matrixDevices)
	t.Run("rabbitmq", func(t *testing.T) {
		b := cloudtest.StartRabbitMQ(t)
		t.Run("template from the store", func(t *testing.T) { testTemplateFromStore(t, b) })
		cfg, _ := testConfig(t, b)
		// One queue per device, named by its identity: the address template, as a
		// cloud that wants an address per device behind a gateway would have it. (The
		// stored address would not do for uAMQP-C: it sends its whole target URL,
		// amqps://127.0.0.1/interop, which is no RabbitMQ address.)
		cfg.AddressTemplate = "interop.{device}"
		gw, st := startGateway(t, cfg)
		sendFromDevices(t, gw, "interop")
		checkFor(t, 60*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return fmt.Sprintf("%d messages left in the store", stored(t, st)) })
		for _, dev := range matrixDevices {
			queue := "/queue/interop." + dev
			got := fromAMQP(queue, b.Receive(t, queue, matrixCount, 30*time.Second))
			checkDevice(t, dev, got)
			b.ExpectEmpty(t, queue, 200*time.Millisecond)
		}
	})
	t.Run("proton", func(t *testing.T) {
		s := cloudtest.StartProton(t)
		gw, st := startGateway(t, protonConfig(s))
		sendFromDevices(t, gw, "interop")
		s.WaitFor(t, 60*time.Second, "all messages", func(d []cloudtest.Delivery) bool { return len(d) >= total })
		checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
		got := byDevice(fromDeliveries(s.Deliveries()))
		for _, dev := range matrixDevices {
			checkDevice(t, dev, got[dev])
		}
	})
	t.Run("rhea", func(t *testing.T) {
		s := cloudtest.StartRhea(t)
		gw, st := startGateway(t, Config{
			URL:          s.URL,
			CAFile:       s.CAFile,
			User:         s.User,
			PasswordFile: s.WritePasswordFile(t),
			BackoffMin:   100 * time.Millisecond,
			BackoffMax:   400 * time.Millisecond,
			DialTimeout:  10 * time.Second,
		})
		sendFromDevices(t, gw, "interop")
		s.WaitFor(t, 60*time.Second, "all messages", func(d []cloudtest.Delivery) bool { return len(d) >= total })
		checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
		got := byDevice(fromDeliveries(s.Deliveries()))
		for _, dev := range matrixDevices {
			checkDevice(t, dev, got[dev])
		}
		// The broker answered the gateway's links with snd-settle-mode mixed (§2.7.3),
		// which go-amqp refuses when a mode was requested.
		for _, a := range s.Attaches() {
			if a.SndSettleMode != 2 {
				t.Errorf("attach %+v: want the broker's answer snd-settle-mode mixed (2)", a)
			}
		}
		if len(s.Attaches()) == 0 {
			t.Error("the broker saw no attach")
		}
	})
}

// testTemplateFromStore checks the address template through RabbitMQ for messages
// already in the store: from a device and from a sensor input ("input:NAME"), with
// {address} and {device}.
func testTemplateFromStore(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	cfg, _ := testConfig(t, b)
	cfg.AddressTemplate = "{address}.{device}"
	sources := []string{"sensor-1", "input:attic"}
	const n = 50
	for i := range n {
		for _, src := range sources {
			m := amqp.NewMessage(devicetest.Body(i, matrixSize))
			m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("%s:%d", src, i)}
			m.ApplicationProperties = map[string]any{"device": src, "seq": int64(i)}
			appendMessages(t, st, "tpl", src, m)
		}
	}
	startUplink(t, cfg, st, interopLog(t))
	for _, src := range sources {
		queue := "/queue/tpl." + src
		var got []arrived
		if src == "sensor-1" {
			got = fromAMQP(queue, b.Receive(t, queue, n, 30*time.Second)) // a durable source
		} else {
			got = fromAMQP(queue, receiveAMQ(t, b, "/amq/queue/tpl."+src, n))
		}
		seen := map[string]bool{}
		for _, a := range got {
			seq, _ := strconv.Atoi(a.props["seq"])
			if a.anno[SourceAnnotation] != src || a.props["device"] != src || seen[a.id] ||
				a.body != hex.EncodeToString(devicetest.Body(seq, matrixSize)) {
				t.Errorf("%s: message %+v: want one of %d from %s, intact", queue, a, n, src)
			}
			seen[a.id] = true
		}
		b.ExpectEmpty(t, queue, 200*time.Millisecond)
	}
	checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
}

// receiveAMQ reads n messages from address with a go-amqp receiver at its defaults
// (a non-durable source), accepting each: how a consumer reads a queue the gateway
// declared durable through /amq/queue/NAME, which declares nothing. It first checks
// that the same receiver on /queue/NAME is refused, as the README says.
func receiveAMQ(t *testing.T, b *cloudtest.Broker, address string, n int) []*amqp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := b.Dial(t)
	if s, err := conn.NewSession(ctx, nil); err != nil {
		t.Fatal(err)
	} else if _, err := s.NewReceiver(ctx, strings.Replace(address, "/amq/queue/", "/queue/", 1), nil); err == nil ||
		!strings.Contains(err.Error(), "inequivalent arg 'durable'") {
		t.Errorf("receiver with a non-durable source on /queue/: got %v, want PRECONDITION_FAILED inequivalent arg 'durable'", err)
	}
	s, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, address, nil)
	if err != nil {
		t.Fatalf("receiver on %s: %v", address, err)
	}
	var out []*amqp.Message
	for len(out) < n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("receive from %s after %d messages: %v", address, len(out), err)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
