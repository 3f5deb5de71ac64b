package uplink

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// The cloud side of the interop matrix: the uplink at its defaults forwards 300
// messages over TLS to each cloud peer at its own defaults; each must arrive once,
// with its body, application-properties and the source annotation intact. Devices at
// their defaults are edge's side of the matrix (edge/interop_defaults_test.go).

// interopCount is the number of messages of one matrix cell.
const interopCount = 300

// interopSources are the senders the cells' messages come from: two devices and a
// sensor input, spread round-robin.
var interopSources = []string{"sensor-1", "sensor-2", "input:attic"}

// interopBody is message i's body: 100 bytes that differ from one message to the next.
func interopBody(i int) []byte {
	b := make([]byte, 100)
	for j := range b {
		b[j] = byte((i + j) % 251)
	}
	return b
}

// arrived is a message as a cloud peer received it, its fields as text.
type arrived struct {
	id, body    string // body: the data section in hex
	props, anno map[string]string
}

// storeInterop stores interopCount messages for address, message-id "cell:i", from
// interopSources in turn, and returns the source of each message-id.
func storeInterop(t *testing.T, st *store.Store, address, cell string) map[string]string {
	t.Helper()
	sources := map[string]string{}
	for i := range interopCount {
		src := interopSources[i%len(interopSources)]
		id := cell + ":" + strconv.Itoa(i)
		m := amqp.NewMessage(interopBody(i))
		m.Properties = &amqp.MessageProperties{MessageID: id}
		m.ApplicationProperties = map[string]any{"device": src, "seq": int64(i), "cell": cell}
		appendMessages(t, st, address, src, m)
		sources[id] = src
	}
	return sources
}

// checkArrived checks that got holds each of want's messages once, intact.
func checkArrived(t *testing.T, got []arrived, want map[string]string) {
	t.Helper()
	seen := map[string]int{}
	for _, a := range got {
		seen[a.id]++
		src, ok := want[a.id]
		if !ok {
			t.Errorf("unexpected message %q", a.id)
			continue
		}
		if seen[a.id] > 1 {
			t.Errorf("message %q arrived %d times", a.id, seen[a.id])
			continue
		}
		seq, err := strconv.Atoi(a.props["seq"])
		if err != nil || a.props["device"] != src || a.props["cell"] == "" {
			t.Errorf("message %q: application-properties %v, want device %s and a seq", a.id, a.props, src)
			continue
		}
		if wantBody := hex.EncodeToString(interopBody(seq)); a.body != wantBody {
			t.Errorf("message %q: body %s, want %s", a.id, a.body, wantBody)
		}
		if a.anno[SourceAnnotation] != src {
			t.Errorf("message %q: %s = %q, want %q", a.id, SourceAnnotation, a.anno[SourceAnnotation], src)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct messages arrived, want %d", len(seen), len(want))
	}
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

// fromAMQP turns messages read with go-amqp into arrived ones.
func fromAMQP(msgs []*amqp.Message) []arrived {
	out := make([]arrived, len(msgs))
	for i, m := range msgs {
		a := arrived{props: map[string]string{}, anno: map[string]string{}, body: hex.EncodeToString(m.GetData())}
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
		out[i] = arrived{id: d.ID, body: d.Body, props: d.Props, anno: d.Annotations}
	}
	return out
}

func TestInteropClouds(t *testing.T) {
	t.Run("rabbitmq", func(t *testing.T) {
		b := cloudtest.StartRabbitMQ(t)
		t.Run("defaults", func(t *testing.T) {
			st := openStore(t, false)
			cfg, _ := testConfig(t, b)
			want := storeInterop(t, st, "interop", "rabbitmq")
			startUplink(t, cfg, st, interopLog(t))
			got := b.Receive(t, "/queue/interop", interopCount, 60*time.Second)
			checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
			b.ExpectEmpty(t, "/queue/interop", 300*time.Millisecond)
			checkArrived(t, fromAMQP(got), want)
		})
		t.Run("address template", func(t *testing.T) {
			st := openStore(t, false)
			cfg, _ := testConfig(t, b)
			cfg.AddressTemplate = "{address}.{device}"
			want := storeInterop(t, st, "tpl", "template")
			startUplink(t, cfg, st, interopLog(t))
			var got []arrived
			for _, src := range interopSources {
				queue := "/queue/tpl." + src
				msgs := fromAMQP(b.Receive(t, queue, interopCount/len(interopSources), 60*time.Second))
				for _, m := range msgs {
					if want[m.id] != src {
						t.Errorf("message %q from %s arrived on %s", m.id, want[m.id], queue)
					}
				}
				got = append(got, msgs...)
			}
			checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
			for _, src := range interopSources {
				b.ExpectEmpty(t, "/queue/tpl."+src, 200*time.Millisecond)
			}
			checkArrived(t, got, want)
		})
	})
	t.Run("proton", func(t *testing.T) {
		s := cloudtest.StartProton(t)
		st := openStore(t, false)
		want := storeInterop(t, st, "interop", "proton")
		startUplink(t, protonConfig(s), st, interopLog(t))
		s.WaitFor(t, 60*time.Second, "300 messages", func(d []cloudtest.Delivery) bool { return len(d) >= interopCount })
		checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
		checkArrived(t, fromDeliveries(s.Deliveries()), want)
	})
	t.Run("rhea", func(t *testing.T) {
		s := cloudtest.StartRhea(t)
		st := openStore(t, false)
		want := storeInterop(t, st, "interop", "rhea")
		cfg := Config{
			URL:          s.URL,
			CAFile:       s.CAFile,
			User:         s.User,
			PasswordFile: s.WritePasswordFile(t),
			BackoffMin:   100 * time.Millisecond,
			BackoffMax:   400 * time.Millisecond,
			DialTimeout:  10 * time.Second,
		}
		startUplink(t, cfg, st, interopLog(t))
		s.WaitFor(t, 60*time.Second, "300 messages", func(d []cloudtest.Delivery) bool { return len(d) >= interopCount })
		checkFor(t, 10*time.Second, func() bool { return stored(t, st) == 0 }, func() string { return "messages left in the store" })
		checkArrived(t, fromDeliveries(s.Deliveries()), want)
		// The link the gateway sent on was answered mixed (§2.7.3), the case go-amqp
		// refuses when a mode was requested.
		as := s.Attaches()
		if len(as) == 0 || as[0].SndSettleMode != 2 {
			t.Errorf("attaches %+v: want the broker's answer snd-settle-mode mixed (2)", as)
		}
	})
}
