package mqtt

import (
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/mqtttest"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
	"github.com/shadowgw/shadowgw/store"
)

// Hostile input: each bad client is closed with the right reason code (MQTT 5) or
// without one (3.1.1, §4.8), while a Paho client publishing at the same time is not
// disturbed and nothing it was acknowledged for is lost.
func TestHostileInput(t *testing.T) {
	mqtttest.Need(t, "paho")
	ts := startServer(t, Config{AllowAnonymous: true, MaxPacketSize: 4096, HandshakeTimeout: 500 * time.Millisecond}, store.Options{})
	const n = 2000
	good := mqtttest.StartPublisher(t, mqtttest.Publish{Addr: ts.addr, ClientID: "good", Topic: "good", Count: n, QoS: 1, Version: 5, Size: 50})

	connected := func(t *testing.T, version byte) *rawClient {
		c := dialRaw(t, ts.addr, version)
		c.connect(packet.Connect{ClientID: t.Name(), CleanStart: true}, 0)
		return c
	}
	// disconnectCode returns the reason code of the one DISCONNECT in got.
	disconnectCode := func(t *testing.T, got []packet.Packet) packet.ReasonCode {
		t.Helper()
		if len(got) != 1 {
			t.Fatalf("got %v, want one DISCONNECT", got)
		}
		d, ok := got[0].(*packet.Disconnect)
		if !ok {
			t.Fatalf("got %+v, want DISCONNECT", got[0])
		}
		return d.Code
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"malformed packet, MQTT 5", func(t *testing.T) {
			c := connected(t, packet.V5)
			c.sendBytes([]byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}) // topic not UTF-8
			if code := disconnectCode(t, c.expectClosed(5*time.Second)); code != packet.MalformedPacket {
				t.Errorf("reason 0x%02x, want 0x81", byte(code))
			}
		}},
		{"malformed packet, small client maximum packet size", func(t *testing.T) {
			c := dialRaw(t, ts.addr, packet.V5)
			connect := packet.Connect{ClientID: "small", CleanStart: true}
			connect.Props.MaximumPacketSize = 24
			connect.Props.Mark(packet.PropMaximumPacketSize)
			c.connect(connect, 0)
			c.sendBytes([]byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28})
			got := c.expectClosed(5 * time.Second)
			if code := disconnectCode(t, got); code != packet.MalformedPacket || got[0].(*packet.Disconnect).Props.Has(packet.PropReasonString) {
				t.Errorf("got %+v, want DISCONNECT 0x81 without a reason string", got[0])
			}
		}},
		{"protocol error, MQTT 5", func(t *testing.T) {
			c := connected(t, packet.V5)
			c.send(&packet.Connect{ProtocolName: "MQTT", Version: packet.V5, ClientID: "again"})
			if code := disconnectCode(t, c.expectClosed(5*time.Second)); code != packet.ProtocolError {
				t.Errorf("reason 0x%02x, want 0x82", byte(code))
			}
		}},
		{"topic alias, MQTT 5", func(t *testing.T) {
			c := connected(t, packet.V5)
			p := &packet.Publish{Topic: "a", Payload: []byte("x")}
			p.Props.TopicAlias = 17 // the server announces 16
			p.Props.Mark(packet.PropTopicAlias)
			c.send(p)
			if code := disconnectCode(t, c.expectClosed(5*time.Second)); code != packet.TopicAliasInvalid {
				t.Errorf("reason 0x%02x, want 0x94", byte(code))
			}
		}},
		{"malformed packet, 3.1.1", func(t *testing.T) {
			c := connected(t, packet.V311)
			c.sendBytes([]byte{0x62, 0x00}) // PUBREL without a packet identifier
			if got := c.expectClosed(5 * time.Second); len(got) != 0 {
				t.Errorf("got %v, want the connection closed", got)
			}
		}},
		{"oversize packet, MQTT 5", func(t *testing.T) {
			c := connected(t, packet.V5)
			c.send(&packet.Publish{Topic: "big", Payload: make([]byte, 5000)})
			if code := disconnectCode(t, c.expectClosed(5*time.Second)); code != packet.PacketTooLarge {
				t.Errorf("reason 0x%02x, want 0x95", byte(code))
			}
		}},
		{"oversize length only, 3.1.1", func(t *testing.T) {
			c := connected(t, packet.V311)
			c.sendBytes([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}) // 268 MB announced, never sent
			if got := c.expectClosed(5 * time.Second); len(got) != 0 {
				t.Errorf("got %v, want the connection closed", got)
			}
		}},
		{"CONNECT that never finishes", func(t *testing.T) {
			c := dialRaw(t, ts.addr, packet.V311)
			c.sendBytes([]byte{0x10, 0x20, 0x00, 0x04, 'M', 'Q'}) // and nothing more
			start := time.Now()
			if got := c.expectClosed(5 * time.Second); len(got) != 0 {
				t.Errorf("got %v, want the connection closed", got)
			}
			if d := time.Since(start); d < 400*time.Millisecond {
				t.Errorf("closed after %v, before the handshake timeout", d)
			}
		}},
		{"silent connection", func(t *testing.T) {
			c := dialRaw(t, ts.addr, packet.V311)
			c.expectClosed(5 * time.Second)
		}},
		{"PUBLISH before CONNECT", func(t *testing.T) {
			c := dialRaw(t, ts.addr, packet.V311)
			c.send(&packet.Publish{Topic: "a"})
			if got := c.expectClosed(5 * time.Second); len(got) != 0 {
				t.Errorf("got %v, want the connection closed", got)
			}
		}},
		{"unknown protocol level", func(t *testing.T) {
			c := dialRaw(t, ts.addr, packet.V311)
			c.send(&packet.Connect{ProtocolName: "MQTT", Version: 6, ClientID: "x"})
			got := c.expectClosed(5 * time.Second)
			if len(got) != 1 || got[0].(*packet.Connack).Code != packet.V3UnacceptableVersion {
				t.Errorf("got %v, want CONNACK 0x01", got)
			}
		}},
		{"keep-alive exceeded, MQTT 5", func(t *testing.T) {
			c := dialRaw(t, ts.addr, packet.V5)
			c.connect(packet.Connect{ClientID: "sleepy", CleanStart: true, KeepAlive: 1}, 0)
			start := time.Now()
			if code := disconnectCode(t, c.expectClosed(5*time.Second)); code != packet.KeepAliveTimeout {
				t.Errorf("reason 0x%02x, want 0x8D", byte(code))
			}
			if d := time.Since(start); d < 1400*time.Millisecond {
				t.Errorf("closed after %v, before 1.5 times the keep-alive", d)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
	acked, end := good.Wait(time.Minute)
	if end != "DONE" || len(acked) != n {
		t.Fatalf("the good client: %d of %d acknowledged: %s", len(acked), n, end)
	}
	msgs := ts.waitMessages(t, n)
	for i, m := range msgs[:n] {
		if m.Annotations[SourceAnnotation] != "good" {
			t.Fatalf("message %d from %v: a bad client's message was stored", i, m.Annotations[SourceAnnotation])
		}
	}
	if len(msgs) != n {
		t.Fatalf("%d messages stored, want %d", len(msgs), n)
	}
	if s := ts.srv.Stats(); s.Refused < 4 {
		t.Errorf("stats %+v: want the refused connections counted", s)
	}
}
