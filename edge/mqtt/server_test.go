package mqtt

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/edge/mqtt/mqtttest"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
	"github.com/shadowgw/shadowgw/store"
)

// Paho clients publish at QoS 0, 1 and 2 over 3.1.1 and 5; every message is stored
// once, in order, with its payload.
func TestPublishPaho(t *testing.T) {
	mqtttest.Need(t, "paho")
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	const n, size = 200, 32
	want := 0
	for _, version := range []int{4, 5} {
		for qos := 0; qos <= 2; qos++ {
			id := fmt.Sprintf("paho-v%d-q%d", version, qos)
			p := mqtttest.StartPublisher(t, mqtttest.Publish{Addr: ts.addr, ClientID: id, Topic: "t/" + id, Count: n, QoS: qos, Version: version, Size: size})
			if acked, end := p.Wait(time.Minute); end != "DONE" || len(acked) != n {
				t.Fatalf("%s: %d of %d acknowledged: %s", id, len(acked), n, end)
			}
			want += n
			msgs := ts.waitMessages(t, want)
			for i, m := range msgs[want-n:] {
				if !bytes.Equal(m.GetData(), mqtttest.Body(id, i, size)) {
					t.Fatalf("%s: message %d: body %q", id, i, m.GetData())
				}
				if m.Annotations[QoSAnnotation] != uint8(qos) || m.Annotations[SourceAnnotation] != id {
					t.Fatalf("%s: annotations %v", id, m.Annotations)
				}
				if version == 5 && m.ApplicationProperties["seq"] != strconv.Itoa(i) {
					t.Fatalf("%s: application-properties %v", id, m.ApplicationProperties)
				}
			}
		}
	}
	if got := len(ts.messages(t)); got != want {
		t.Fatalf("%d messages stored, want %d", got, want)
	}
}

// QoS 2 (§4.3.3): PUBREC after the commit; a PUBLISH repeated before PUBREL is
// acknowledged again and not stored twice, also across a reconnection with a kept
// session; PUBREL ends it with PUBCOMP.
func TestQoS2Exactly(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	for _, version := range []byte{packet.V311, packet.V5} {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			before := len(ts.messages(t))
			id := fmt.Sprint("q2-", version)
			connect := packet.Connect{ClientID: id}
			connect.Props.SessionExpiry = 600
			connect.Props.Mark(packet.PropSessionExpiry)
			c := dialRaw(t, ts.addr, version)
			if ack := c.connect(connect, 0); ack.SessionPresent {
				t.Fatal("session present on a first connection")
			}
			pub := &packet.Publish{QoS: 2, ID: 7, Topic: "q2", Payload: []byte("once")}
			c.send(pub)
			if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Kind != packet.PUBREC || a.ID != 7 || a.Code != 0 {
				t.Fatalf("got %+v, want PUBREC 7", a)
			}
			pub.Dup = true
			c.send(pub)
			if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Kind != packet.PUBREC || a.ID != 7 {
				t.Fatalf("got %+v, want PUBREC 7 again", a)
			}
			// The connection drops before PUBREL; the client comes back with its session.
			c.nc.Close()
			c = dialRaw(t, ts.addr, version)
			deadline := time.Now().Add(5 * time.Second)
			var ack *packet.Connack
			for {
				// The old connection may still be ending: then the session is not kept yet.
				c2 := dialRaw(t, ts.addr, version)
				ack = c2.connect(connect, 0)
				if ack.SessionPresent || time.Now().After(deadline) {
					c = c2
					break
				}
				c2.nc.Close()
				time.Sleep(20 * time.Millisecond)
			}
			if !ack.SessionPresent {
				t.Fatal("session not present after reconnecting")
			}
			c.send(pub)
			if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Kind != packet.PUBREC || a.ID != 7 {
				t.Fatalf("got %+v, want PUBREC 7 after reconnecting", a)
			}
			c.send(&packet.Ack{Kind: packet.PUBREL, ID: 7})
			if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Kind != packet.PUBCOMP || a.ID != 7 || a.Code != 0 {
				t.Fatalf("got %+v, want PUBCOMP 7", a)
			}
			c.send(&packet.Ack{Kind: packet.PUBREL, ID: 7})
			a, ok := c.expect(5 * time.Second).(*packet.Ack)
			want := packet.ReasonCode(0)
			if version == packet.V5 {
				want = packet.PacketIDNotFound
			}
			if !ok || a.Kind != packet.PUBCOMP || a.Code != want {
				t.Fatalf("got %+v, want PUBCOMP with 0x%02x for an unknown identifier", a, byte(want))
			}
			c.send(&packet.Disconnect{})
			if got := len(ts.messages(t)) - before; got != 1 {
				t.Fatalf("%d messages stored, want 1", got)
			}
		})
	}
}

// Will messages go through the store when a connection ends without DISCONNECT, or
// with MQTT 5's DISCONNECT 0x04; a normal DISCONNECT cancels them.
func TestWill(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	will := func(topic string) *packet.Will {
		w := &packet.Will{QoS: 1, Topic: topic, Payload: []byte("gone")}
		return w
	}
	// 3.1.1: the connection drops.
	c := dialRaw(t, ts.addr, packet.V311)
	c.connect(packet.Connect{ClientID: "w1", CleanStart: true, Will: will("will/dropped")}, 0)
	c.nc.Close()
	// MQTT 5: a normal DISCONNECT.
	c = dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "w2", CleanStart: true, Will: will("will/clean")}, 0)
	c.send(&packet.Disconnect{})
	c.expectClosed(5 * time.Second)
	// MQTT 5: DISCONNECT with Will Message.
	c = dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "w3", CleanStart: true, Will: will("will/asked")}, 0)
	c.send(&packet.Disconnect{Code: packet.DisconnectWithWill})
	c.expectClosed(5 * time.Second)
	// A marker after the others, so the test knows when they are done.
	c = dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "w4", CleanStart: true}, 0)
	c.send(&packet.Publish{QoS: 1, ID: 1, Topic: "marker"})
	c.expect(5 * time.Second)
	msgs := ts.waitMessages(t, 3)
	var topics []string
	for _, m := range ts.messages(t) {
		topics = append(topics, m.Annotations[SourceAnnotation].(string)+":"+string(m.GetData()))
	}
	got := strings.Join(topics, " ")
	if len(msgs) != 3 || !strings.Contains(got, "w1:gone") || !strings.Contains(got, "w3:gone") || strings.Contains(got, "w2") {
		t.Fatalf("stored %s; want the wills of w1 and w3 and the marker", got)
	}
}

// Access: users from package credential, anonymous networks, allowed topics.
func TestAccess(t *testing.T) {
	hash, err := credential.Hash("secret")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		AllowAnonymous:    true,
		AnonymousNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Users:             map[string]string{"dev": hash},
		Targets:           map[string][]string{"dev": {"telemetry/*"}},
	}
	ts := startServer(t, cfg, store.Options{})
	cases := []struct {
		name    string
		version byte
		connect packet.Connect
		code    packet.ReasonCode
	}{
		{"wrong password 5", packet.V5, packet.Connect{ClientID: "a", HasUser: true, User: "dev", HasPassword: true, Password: []byte("nope")}, packet.BadUserNameOrPassword},
		{"wrong password 3.1.1", packet.V311, packet.Connect{ClientID: "a", HasUser: true, User: "dev", HasPassword: true, Password: []byte("nope")}, packet.V3BadUserNameOrPassword},
		{"unknown user", packet.V5, packet.Connect{ClientID: "a", HasUser: true, User: "who", HasPassword: true, Password: []byte("secret")}, packet.BadUserNameOrPassword},
		{"anonymous from loopback 5", packet.V5, packet.Connect{ClientID: "a"}, packet.NotAuthorized},
		{"anonymous from loopback 3.1.1", packet.V311, packet.Connect{ClientID: "a"}, packet.V3NotAuthorized},
		{"empty id without clean session 3.1.1", packet.V311, packet.Connect{HasUser: true, User: "dev", HasPassword: true, Password: []byte("secret")}, packet.V3IdentifierRejected},
		{"will topic not allowed", packet.V5, packet.Connect{ClientID: "a", HasUser: true, User: "dev", HasPassword: true, Password: []byte("secret"),
			Will: &packet.Will{Topic: "alarms/x"}}, packet.NotAuthorized},
		{"enhanced authentication", packet.V5, packet.Connect{ClientID: "a", Props: packet.Properties{Set: 1 << packet.PropAuthMethod, AuthMethod: "SCRAM-SHA-1"}}, packet.BadAuthenticationMethod},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr, c.version)
			rc.connect(c.connect, c.code)
			rc.expectClosed(5 * time.Second)
		})
	}
	t.Run("topics", func(t *testing.T) {
		login := packet.Connect{ClientID: "dev-1", CleanStart: true, HasUser: true, User: "dev", HasPassword: true, Password: []byte("secret")}
		c := dialRaw(t, ts.addr, packet.V5)
		c.connect(login, 0)
		c.send(&packet.Publish{QoS: 1, ID: 1, Topic: "alarms/fire", Payload: []byte("x")})
		if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Code != packet.NotAuthorized {
			t.Fatalf("got %+v, want PUBACK 0x87", a)
		}
		c.send(&packet.Publish{QoS: 1, ID: 2, Topic: "telemetry/t", Payload: []byte("y")})
		if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Code != 0 || a.ID != 2 {
			t.Fatalf("got %+v, want PUBACK 2", a)
		}
		// 3.1.1 has no negative acknowledgement: the client is disconnected (§3.3.5).
		c3 := dialRaw(t, ts.addr, packet.V311)
		c3.connect(login, 0)
		c3.send(&packet.Publish{QoS: 1, ID: 1, Topic: "alarms/fire", Payload: []byte("x")})
		if got := c3.expectClosed(5 * time.Second); len(got) != 0 {
			t.Fatalf("got %v, want the connection closed without an acknowledgement", got)
		}
		msgs := ts.messages(t)
		if len(msgs) != 1 || string(msgs[0].GetData()) != "y" || msgs[0].Annotations[SourceAnnotation] != "dev" {
			t.Fatalf("stored %v, want only y from dev", msgs)
		}
	})
}

// A full store: the client gets no PUBACK until there is room (backpressure), and
// nothing is lost.
func TestBackpressure(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{MaxMessages: 5})
	c := dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "bp", CleanStart: true}, 0)
	for i := 1; i <= 10; i++ {
		c.send(&packet.Publish{QoS: 1, ID: uint16(i), Topic: "t", Payload: []byte{byte(i)}})
	}
	for i := 1; i <= 5; i++ {
		if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.ID != uint16(i) || a.Code != 0 {
			t.Fatalf("got %+v, want PUBACK %d", a, i)
		}
	}
	// The store is full: no acknowledgement within a second.
	if p, err := c.recv(time.Second); err == nil {
		t.Fatalf("got %+v while the store is full, want nothing", p)
	}
	ms, err := ts.st.Read(0, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := ts.st.Delete(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	for i := 6; i <= 10; i++ {
		if a, ok := c.expect(10 * time.Second).(*packet.Ack); !ok || a.ID != uint16(i) || a.Code != 0 {
			t.Fatalf("got %+v, want PUBACK %d once there is room", a, i)
		}
	}
	msgs := ts.messages(t)
	for i, m := range msgs {
		if !bytes.Equal(m.GetData(), []byte{byte(i + 6)}) {
			t.Fatalf("message %d: %v", i, m.GetData())
		}
	}
}

// A server without command queues refuses every subscription: SUBACK 0x80 (both
// versions), UNSUBACK 0x11 (MQTT 5); mosquitto_sub says so.
func TestSubscribeRefused(t *testing.T) {
	addr := serve(t, New(Config{AllowAnonymous: true}, failSink{}, nil, nil))
	for _, version := range []byte{packet.V311, packet.V5} {
		c := dialRaw(t, addr, version)
		c.connect(packet.Connect{ClientID: fmt.Sprint("sub", version), CleanStart: true}, 0)
		c.send(&packet.Subscribe{ID: 3, Subs: []packet.Subscription{{Filter: "command/x/#", QoS: 1}, {Filter: "b"}}})
		s, ok := c.expect(5 * time.Second).(*packet.Suback)
		if !ok || s.ID != 3 || len(s.Codes) != 2 || s.Codes[0] != 0x80 || s.Codes[1] != 0x80 {
			t.Fatalf("version %d: got %+v, want SUBACK 3 with 0x80 0x80", version, s)
		}
		c.send(&packet.Unsubscribe{ID: 4, Filters: []string{"b"}})
		u, ok := c.expect(5 * time.Second).(*packet.Unsuback)
		if !ok || u.ID != 4 || (version == packet.V5 && (len(u.Codes) != 1 || u.Codes[0] != packet.NoSubscriptionExisted)) {
			t.Fatalf("version %d: got %+v, want UNSUBACK 4", version, u)
		}
	}
	if _, err := exec.LookPath("mosquitto_sub"); err == nil {
		host, port, _ := net.SplitHostPort(addr)
		out, _ := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-t", "command/#", "-V", "mqttv5", "-W", "5").CombinedOutput()
		if !strings.Contains(string(out), "denied") {
			t.Errorf("mosquitto_sub said %q, want the subscription denied", out)
		}
	}
}

// A second connection with the same client identifier takes over (§3.1.4): the first
// is told Session taken over.
func TestTakeover(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	a := dialRaw(t, ts.addr, packet.V5)
	a.connect(packet.Connect{ClientID: "same"}, 0)
	b := dialRaw(t, ts.addr, packet.V5)
	b.connect(packet.Connect{ClientID: "same"}, 0)
	got := a.expectClosed(5 * time.Second)
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.SessionTakenOver {
		t.Fatalf("first connection got %v, want DISCONNECT 0x8E", got)
	}
	b.send(&packet.Pingreq{})
	if _, ok := b.expect(5 * time.Second).(*packet.Pingresp); !ok {
		t.Fatal("the new connection does not answer PINGREQ")
	}
}

// MQTT 5 Will Delay Interval (5.0 §3.1.3.2.2): the will waits; a reconnection in time
// cancels it; a session that ends at once publishes it at once.
func TestWillDelay(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	connect := func(id string, delay, expiry uint32) *rawClient {
		c := dialRaw(t, ts.addr, packet.V5)
		p := packet.Connect{ClientID: id, CleanStart: true, Will: &packet.Will{Topic: "will/" + id, Payload: []byte(id)}}
		p.Will.Props.WillDelay = delay
		p.Will.Props.Mark(packet.PropWillDelay)
		p.Props.SessionExpiry = expiry
		p.Props.Mark(packet.PropSessionExpiry)
		c.connect(p, 0)
		return c
	}
	stored := func() string {
		var ids []string
		for _, m := range ts.messages(t) {
			ids = append(ids, string(m.GetData()))
		}
		return strings.Join(ids, " ")
	}
	start := time.Now()
	connect("now", 60, 0).nc.Close()              // the session ends at once: so does the delay
	connect("later", 1, 60).nc.Close()            // stored after a second
	connect("back", 1, 60).nc.Close()             // cancelled by the reconnection below
	connect("back", 0, 0).send(&packet.Pingreq{}) // (its own will is not delayed, but it stays connected)
	ts.waitMessages(t, 2)
	elapsed := time.Since(start)
	if got := stored(); got != "now later" {
		t.Fatalf("stored %q, want the wills of now, then later", got)
	}
	if elapsed < time.Second {
		t.Errorf("the delayed will was stored after %v, before its delay of 1s", elapsed)
	}
	// "back" reconnected within its delay: give its timer time to fire, if it wrongly would.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := stored(); got != "now later" {
			t.Fatalf("stored %q: the will of a client that came back was published", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// max-keep-alive: an MQTT 5 client asking for none gets Server Keep Alive; a 3.1.1
// client is held to it without being told. address-prefix goes in front of the topic.
func TestKeepAliveCapAndPrefix(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true, MaxKeepAlive: time.Second, AddressPrefix: "mqtt/"}, store.Options{})
	c5 := dialRaw(t, ts.addr, packet.V5)
	ack := c5.connect(packet.Connect{ClientID: "ka5", CleanStart: true, KeepAlive: 0}, 0)
	if !ack.Props.Has(packet.PropServerKeepAlive) || ack.Props.ServerKeepAlive != 1 {
		t.Errorf("CONNACK %+v, want Server Keep Alive 1", ack.Props)
	}
	c5.send(&packet.Publish{QoS: 1, ID: 1, Topic: "t", Payload: []byte("p")})
	c5.expect(5 * time.Second)
	c3 := dialRaw(t, ts.addr, packet.V311)
	c3.connect(packet.Connect{ClientID: "ka3", CleanStart: true, KeepAlive: 600}, 0)
	start := time.Now()
	c3.expectClosed(5 * time.Second)
	if d := time.Since(start); d < 1400*time.Millisecond {
		t.Errorf("3.1.1 client closed after %v, before 1.5 times max-keep-alive", d)
	}
	ms, err := ts.st.Read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Address != "mqtt/t" {
		t.Fatalf("stored %+v, want one message for mqtt/t", ms)
	}
}
