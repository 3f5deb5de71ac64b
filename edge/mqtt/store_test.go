package mqtt

import (
	"bytes"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
	"github.com/shadowgw/shadowgw/store"
)

// A drop-oldest route takes every message, as for AMQP devices: the client is never
// held back, and the oldest messages make room.
func TestDropOldest(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{
		MaxMessages: 5, WhenFull: store.DropOldest,
	})
	c := dialRaw(t, ts.addr, packet.V311)
	c.connect(packet.Connect{ClientID: "drop", CleanStart: true}, 0)
	for i := 1; i <= 10; i++ {
		c.send(&packet.Publish{QoS: 1, ID: uint16(i), Topic: "t", Payload: []byte{byte(i)}})
		if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.ID != uint16(i) {
			t.Fatalf("got %+v, want PUBACK %d", a, i)
		}
	}
	msgs := ts.messages(t)
	if len(msgs) != 5 || !bytes.Equal(msgs[0].GetData(), []byte{6}) || !bytes.Equal(msgs[4].GetData(), []byte{10}) {
		t.Fatalf("stored %d messages, want the newest 5", len(msgs))
	}
}

// A store that fails (here: closed) never turns into a positive acknowledgement:
// MQTT 5 gets PUBACK/PUBREC 0x80, 3.1.1 is disconnected.
func TestStoreFailure(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	c5 := dialRaw(t, ts.addr, packet.V5)
	c5.connect(packet.Connect{ClientID: "f5", CleanStart: true}, 0)
	c3 := dialRaw(t, ts.addr, packet.V311)
	c3.connect(packet.Connect{ClientID: "f3", CleanStart: true}, 0)
	if err := ts.st.Close(); err != nil {
		t.Fatal(err)
	}
	c5.send(&packet.Publish{QoS: 1, ID: 1, Topic: "t", Payload: []byte("x")})
	if a, ok := c5.expect(5 * time.Second).(*packet.Ack); !ok || a.Kind != packet.PUBACK || a.Code != packet.UnspecifiedError {
		t.Fatalf("got %+v, want PUBACK 0x80", a)
	}
	c5.send(&packet.Publish{QoS: 2, ID: 2, Topic: "t", Payload: []byte("y")})
	if a, ok := c5.expect(5 * time.Second).(*packet.Ack); !ok || a.Kind != packet.PUBREC || a.Code != packet.UnspecifiedError {
		t.Fatalf("got %+v, want PUBREC 0x80", a)
	}
	c3.send(&packet.Publish{QoS: 1, ID: 1, Topic: "t", Payload: []byte("z")})
	if got := c3.expectClosed(5 * time.Second); len(got) != 0 {
		t.Fatalf("got %v, want the 3.1.1 connection closed without an acknowledgement", got)
	}
}
