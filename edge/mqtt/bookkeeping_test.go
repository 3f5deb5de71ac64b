package mqtt

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/mqtt/mqtttest"
)

// gateSink keeps messages in memory; their completions wait until open is called,
// like a store whose commits stall.
type gateSink struct {
	mu      sync.Mutex
	opened  bool
	waiting []func(error)
	stored  [][]byte // payloads, in Append order
}

func (s *gateSink) Append(m *Message, done func(error)) {
	s.mu.Lock()
	s.stored = append(s.stored, m.Payload)
	if !s.opened {
		s.waiting = append(s.waiting, done)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	done(nil)
}

func (s *gateSink) Full(string) bool { return false }

func (s *gateSink) open() {
	s.mu.Lock()
	s.opened = true
	w := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	for _, done := range w {
		done(nil)
	}
}

// bodies returns the bodies of the messages handed to the sink.
func (s *gateSink) bodies(t *testing.T) map[string]bool {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.stored))
	for _, p := range s.stored {
		var m amqp.Message
		if err := m.UnmarshalBinary(p); err != nil {
			t.Fatal(err)
		}
		out[string(m.GetData())] = true
	}
	return out
}

// The publisher the tests count acknowledgements with reports no message as
// acknowledged that the server was not given, also when the store stalls while the
// client has more messages to send than MQTT has packet identifiers: Paho 1.6 reuses
// the identifier of a message still in flight once it runs 65,535 messages ahead.
func TestPublisherCountsOnlyStoredMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 70,000 messages")
	}
	mqtttest.Need(t, "paho")
	sink := &gateSink{}
	addr := serve(t, New(Config{AllowAnonymous: true}, sink, nil, nil))

	const n, size, id = 70_000, 16, "wrap"
	p := mqtttest.StartPublisher(t, mqtttest.Publish{Addr: addr, ClientID: id, Topic: "t", Count: n, QoS: 1, Version: 4, Size: size})
	// The store stalls until the client waits for acknowledgements, or for 30 s (a
	// client that does not wait runs far ahead meanwhile).
	for deadline := time.Now().Add(30 * time.Second); !p.Held() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	sink.open()
	acked, end := p.Wait(2 * time.Minute)
	stored := sink.bodies(t)
	missing := 0
	for _, seq := range acked {
		if !stored[string(mqtttest.Body(id, seq, size))] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d messages reported acknowledged were never handed to the server (%s)", missing, len(acked), end)
	}
	if end != "DONE" || len(acked) != n {
		t.Fatalf("%d of %d acknowledged: %s", len(acked), n, end)
	}
}

// failSink stores nothing.
type failSink struct{}

func (failSink) Append(_ *Message, done func(error)) { done(errors.New("disk on fire")) }
func (failSink) Full(string) bool                    { return false }

// A refusing PUBACK, PUBREC or PUBCOMP (MQTT 5 reason code 0x80) is not counted as an
// acknowledgement, although Paho 1.6 reports the message as published.
func TestPublisherCountsNoRefusal(t *testing.T) {
	mqtttest.Need(t, "paho")
	addr := serve(t, New(Config{AllowAnonymous: true}, failSink{}, nil, nil))
	for qos := 1; qos <= 2; qos++ {
		p := mqtttest.StartPublisher(t, mqtttest.Publish{Addr: addr, ClientID: fmt.Sprint("refused-", qos), Topic: "t", Count: 5, QoS: qos, Version: 5, Size: 16})
		if acked, end := p.Wait(time.Minute); len(acked) != 0 || end != "LOST 5 refused" {
			t.Fatalf("QoS %d: acknowledged %v, end %q; want none acknowledged and 5 refused", qos, acked, end)
		}
	}
}
