package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
	"github.com/shadowgw/shadowgw/store"
)

// queueCommand queues m for device as the uplink's receiver does, expiring after ttl
// (0: the store's default).
func (ts *testServer) queueCommand(t *testing.T, device string, m *amqp.Message, ttl time.Duration) uint64 {
	t.Helper()
	p, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Command{Device: device, Address: "/queue/cmds", Source: "cloud", Payload: p}
	if ttl > 0 {
		c.Expires = time.Now().Add(ttl)
	}
	if err := ts.st.AppendCommand(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.Seq
}

// queued returns the number of commands queued for device.
func (ts *testServer) queued(t *testing.T, device string) int {
	t.Helper()
	cs, err := ts.st.ReadCommands(device, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// waitQueued polls until device has n commands queued.
func (ts *testServer) waitQueued(t *testing.T, device string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.queued(t, device) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands queued for %s, want %d", ts.queued(t, device), device, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func command(i int) *amqp.Message {
	m := amqp.NewMessage([]byte(fmt.Sprintf("cmd %d", i)))
	subj, reply, ct := "set-valve", "replies/app", "application/json"
	m.Properties = &amqp.MessageProperties{Subject: &subj, ReplyTo: &reply, CorrelationID: fmt.Sprintf("c%d", i), ContentType: &ct}
	m.ApplicationProperties = map[string]any{"n": int64(i), "unit": "bar"}
	return m
}

// expectPublish reads the next packet, which must be a PUBLISH.
func (c *rawClient) expectPublish() *packet.Publish {
	c.t.Helper()
	p := c.expect(5 * time.Second)
	pub, ok := p.(*packet.Publish)
	if !ok {
		c.t.Fatalf("got %+v, want PUBLISH", p)
	}
	return pub
}

// expectNothing checks that no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	if p, err := c.recv(d); err == nil {
		c.t.Fatalf("got %+v, want nothing", p)
	}
}

// subscribe sends SUBSCRIBE for filter with qos and returns the SUBACK code.
func (c *rawClient) subscribe(filter string, qos byte) packet.ReasonCode {
	c.t.Helper()
	c.send(&packet.Subscribe{ID: 9, Subs: []packet.Subscription{{Filter: filter, QoS: qos}}})
	a, ok := c.expect(5 * time.Second).(*packet.Suback)
	if !ok || a.ID != 9 || len(a.Codes) != 1 {
		c.t.Fatalf("got %+v, want SUBACK 9", a)
	}
	return a.Codes[0]
}

// Commands queued while the client was away arrive in order, with the MQTT 5
// properties mapped from the AMQP message; PUBACK deletes them; one queued while it
// is subscribed arrives at once.
func TestCommandsDelivered(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	for _, version := range []byte{packet.V311, packet.V5} {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			dev := fmt.Sprint("dev", version)
			for i := 1; i <= 5; i++ {
				ts.queueCommand(t, dev, command(i), time.Minute)
			}
			c := dialRaw(t, ts.addr, version)
			c.connect(packet.Connect{ClientID: dev, CleanStart: true}, 0)
			if code := c.subscribe("command/"+dev+"/#", 1); code != 1 {
				t.Fatalf("SUBACK 0x%02x, want 1", byte(code))
			}
			ids := map[uint16]bool{}
			for i := 1; i <= 6; i++ {
				if i == 6 {
					ts.queueCommand(t, dev, command(6), 0) // while subscribed
				}
				p := c.expectPublish()
				if p.QoS != 1 || p.Dup || p.Topic != "command/"+dev+"/set-valve" || string(p.Payload) != fmt.Sprintf("cmd %d", i) || ids[p.ID] {
					t.Fatalf("command %d: got %+v", i, p)
				}
				ids[p.ID] = true
				if version == packet.V5 {
					pr := &p.Props
					if string(pr.CorrelationData) != fmt.Sprintf("c%d", i) || pr.ResponseTopic != "replies/app" || pr.ContentType != "application/json" {
						t.Fatalf("command %d: properties %+v", i, pr)
					}
					want := []packet.UserProperty{{Key: "n", Value: fmt.Sprint(i)}, {Key: "unit", Value: "bar"}}
					if len(pr.User) != 2 || !(pr.User[0] == want[0] && pr.User[1] == want[1] || pr.User[0] == want[1] && pr.User[1] == want[0]) {
						t.Fatalf("command %d: user properties %v, want %v", i, pr.User, want)
					}
					// §3.3.2.3.3: the time left, 60 s at most (3600 s, the default, for 6).
					limit := uint32(60)
					if i == 6 {
						limit = 3600
					}
					if !pr.Has(packet.PropMessageExpiry) || pr.MessageExpiry > limit || pr.MessageExpiry < limit-10 {
						t.Fatalf("command %d: message expiry %d, want about %d", i, pr.MessageExpiry, limit)
					}
				} else if p.Props.Set != 0 {
					t.Fatalf("3.1.1 PUBLISH with properties %+v", p.Props)
				}
				c.send(&packet.Ack{Kind: packet.PUBACK, ID: p.ID})
			}
			ts.waitQueued(t, dev, 0)
			c.expectNothing(200 * time.Millisecond)
		})
	}
	if st := ts.srv.Stats(); st.CommandsSent != 12 || st.CommandsDelivered != 12 {
		t.Errorf("stats %+v, want 12 sent and delivered", st)
	}
}

// The subscription filters: command/<id>/#, Hono's command///req/# for one's own
// (user name, or client id when anonymous) and command//<id>/req/#; another
// device's commands are refused with 0x87 (3.1.1: 0x80), other filters with 0x8F.
func TestCommandFilters(t *testing.T) {
	hash, err := credential.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{AllowAnonymous: true, Users: map[string]string{"alice": hash},
		CommandAccess: map[string][]string{"": {"sensor-*"}}}, store.Options{})
	cases := []struct {
		name, user, client, filter string
		code                       packet.ReasonCode // MQTT 5
		topic                      string            // of a command with correlation-id c1, subject set-valve
	}{
		{"own by user", "alice", "x1", "command/alice/#", 1, "command/alice/set-valve"},
		{"hono own by user", "alice", "x2", "command///req/#", 1, "command///req/c1/set-valve"},
		{"hono gateway form", "alice", "x3", "command//alice/req/#", 1, "command//alice/req/c1/set-valve"},
		{"another device's", "alice", "x4", "command/bob/#", packet.NotAuthorized, ""},
		{"anonymous, allowed id", "", "a1", "command/sensor-7/#", 1, "command/sensor-7/set-valve"},
		{"anonymous, hono own by client id", "", "sensor-8", "command///req/#", 1, "command///req/c1/set-valve"},
		{"anonymous, another id", "", "a2", "command/bob/#", packet.NotAuthorized, ""},
		{"anonymous, hono own id not allowed", "", "a3", "command///req/#", packet.NotAuthorized, ""},
		{"not a command filter", "alice", "x5", "telemetry/#", packet.TopicFilterInvalid, ""},
		{"wildcard device", "alice", "x6", "command/+/#", packet.TopicFilterInvalid, ""},
		{"shared", "alice", "x7", "$share/g/command/alice/#", packet.SharedSubNotSupported, ""},
	}
	for _, version := range []byte{packet.V311, packet.V5} {
		for _, tc := range cases {
			t.Run(fmt.Sprint(tc.name, " ", version), func(t *testing.T) {
				dev := map[bool]string{true: tc.user, false: tc.client}[tc.user != ""]
				if id, ok := strings.CutPrefix(tc.filter, "command/"); ok && !strings.HasPrefix(id, "/") && !strings.HasPrefix(id, "+") {
					dev, _, _ = strings.Cut(id, "/")
				} else if strings.HasPrefix(tc.filter, "command//alice/") {
					dev = "alice"
				}
				c := dialRaw(t, ts.addr, version)
				cp := packet.Connect{ClientID: tc.client, CleanStart: true}
				if tc.user != "" {
					cp.HasUser, cp.User, cp.HasPassword, cp.Password = true, tc.user, true, []byte("pw")
				}
				c.connect(cp, 0)
				want := tc.code
				if version == packet.V311 && want >= 0x80 {
					want = packet.V3SubscriptionFailure
				}
				if got := c.subscribe(tc.filter, 2); got != want { // QoS 2 asked, 1 granted
					t.Fatalf("SUBACK 0x%02x, want 0x%02x", byte(got), byte(want))
				}
				if tc.topic == "" {
					return
				}
				ts.queueCommand(t, dev, command(1), 0)
				p := c.expectPublish()
				if p.Topic != tc.topic || p.QoS != 1 {
					t.Fatalf("got topic %q QoS %d, want %q QoS 1", p.Topic, p.QoS, tc.topic)
				}
				c.send(&packet.Ack{Kind: packet.PUBACK, ID: p.ID})
				ts.waitQueued(t, dev, 0)
			})
		}
	}
}

// No more commands in flight than the client's Receive Maximum (5.0 §3.3.4); a
// PUBACK lets the next one go.
func TestCommandsReceiveMaximum(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	for i := 1; i <= 5; i++ {
		ts.queueCommand(t, "rm", command(i), 0)
	}
	c := dialRaw(t, ts.addr, packet.V5)
	cp := packet.Connect{ClientID: "rm", CleanStart: true}
	cp.Props.ReceiveMaximum = 2
	cp.Props.Mark(packet.PropReceiveMaximum)
	c.connect(cp, 0)
	c.subscribe("command/rm/#", 1)
	a, b := c.expectPublish(), c.expectPublish()
	c.expectNothing(300 * time.Millisecond)
	c.send(&packet.Ack{Kind: packet.PUBACK, ID: b.ID}) // out of order is allowed
	if p := c.expectPublish(); string(p.Payload) != "cmd 3" {
		t.Fatalf("got %q, want cmd 3", p.Payload)
	}
	c.expectNothing(300 * time.Millisecond)
	c.send(&packet.Ack{Kind: packet.PUBACK, ID: a.ID})
	if p := c.expectPublish(); string(p.Payload) != "cmd 4" {
		t.Fatalf("got %q, want cmd 4", p.Payload)
	}
}

// An MQTT 5 PUBACK with a reason code of 0x80 or more dead-letters the command with
// the reason; a command a PUBLISH cannot carry is dead-lettered too; with QoS 0 a
// command is deleted once sent.
func TestCommandOutcomes(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	ts.queueCommand(t, "out", command(1), 0)
	seq := &amqp.Message{Sequence: [][]any{{"a"}}}
	ts.queueCommand(t, "out", seq, 0)
	ts.queueCommand(t, "out", command(3), 0)
	c := dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "out", CleanStart: true}, 0)
	c.subscribe("command/out/#", 1)
	p := c.expectPublish()
	a := &packet.Ack{Kind: packet.PUBACK, ID: p.ID, Code: packet.ImplementationSpecific}
	a.Props.ReasonString = "valve stuck"
	a.Props.Mark(packet.PropReasonString)
	c.send(a)
	if p := c.expectPublish(); string(p.Payload) != "cmd 3" {
		t.Fatalf("got %q, want cmd 3 (the sequence body dead-lettered)", p.Payload)
	}
	ts.waitQueued(t, "out", 1)
	dead, err := ts.st.CommandDeadLetters("out", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || !strings.Contains(dead[0].Reason, "0x83: valve stuck") || !strings.Contains(dead[1].Reason, "amqp-sequence") {
		t.Fatalf("dead letters %+v, want the PUBACK reason and the sequence body", dead)
	}

	q := dialRaw(t, ts.addr, packet.V311)
	q.connect(packet.Connect{ClientID: "q0", CleanStart: true}, 0)
	ts.queueCommand(t, "q0", command(1), 0)
	if code := q.subscribe("command/q0/#", 0); code != 0 {
		t.Fatalf("SUBACK 0x%02x, want 0", byte(code))
	}
	if p := q.expectPublish(); p.QoS != 0 || string(p.Payload) != "cmd 1" {
		t.Fatalf("got %+v, want cmd 1 with QoS 0", p)
	}
	ts.waitQueued(t, "q0", 0)
}

// Commands unacknowledged when the connection drops stay queued: a client that
// comes back with its session gets them again with DUP and the same packet
// identifiers, without subscribing again (§4.4); a client without a session gets
// them as new PUBLISHes once it subscribes.
func TestCommandsRedelivered(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	for _, version := range []byte{packet.V311, packet.V5} {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			dev := fmt.Sprint("re", version)
			for i := 1; i <= 3; i++ {
				ts.queueCommand(t, dev, command(i), 0)
			}
			cp := packet.Connect{ClientID: dev}
			cp.Props.SessionExpiry = 600
			cp.Props.Mark(packet.PropSessionExpiry)
			c := dialRaw(t, ts.addr, version)
			if ack := c.connect(cp, 0); ack.SessionPresent {
				t.Fatal("session present on the first connection")
			}
			c.subscribe("command/"+dev+"/#", 1)
			var first []*packet.Publish
			for range 3 {
				first = append(first, c.expectPublish())
			}
			c.send(&packet.Ack{Kind: packet.PUBACK, ID: first[0].ID})
			ts.waitQueued(t, dev, 2)
			c.nc.Close()

			// Back with the session: 2 and 3 again, DUP, same identifiers.
			var ack *packet.Connack
			deadline := time.Now().Add(5 * time.Second)
			for {
				c = dialRaw(t, ts.addr, version)
				if ack = c.connect(cp, 0); ack.SessionPresent || time.Now().After(deadline) {
					break // the old connection may still be ending: then no session yet
				}
				c.nc.Close()
				time.Sleep(20 * time.Millisecond)
			}
			if !ack.SessionPresent {
				t.Fatal("session not present after reconnecting")
			}
			for i := 1; i <= 2; i++ {
				p := c.expectPublish()
				if !p.Dup || p.ID != first[i].ID || string(p.Payload) != fmt.Sprintf("cmd %d", i+1) {
					t.Fatalf("got %+v, want cmd %d again with DUP and id %d", p, i+1, first[i].ID)
				}
			}
			ts.queueCommand(t, dev, command(4), 0) // the subscription is part of the session
			if p := c.expectPublish(); p.Dup || string(p.Payload) != "cmd 4" {
				t.Fatalf("got %+v, want cmd 4", p)
			}
			c.nc.Close()

			// A clean start: no session; subscribing again gets 2, 3, 4 as new.
			clean := packet.Connect{ClientID: dev, CleanStart: true}
			c = dialRaw(t, ts.addr, version)
			if ack := c.connect(clean, 0); ack.SessionPresent {
				t.Fatal("session present with a clean start")
			}
			c.expectNothing(200 * time.Millisecond)
			c.subscribe("command/"+dev+"/#", 1)
			for i := 2; i <= 4; i++ {
				p := c.expectPublish()
				if p.Dup || string(p.Payload) != fmt.Sprintf("cmd %d", i) {
					t.Fatalf("got %+v, want cmd %d", p, i)
				}
				c.send(&packet.Ack{Kind: packet.PUBACK, ID: p.ID})
			}
			ts.waitQueued(t, dev, 0)
		})
	}
}

// Topic aliases (5.0 §3.3.2.3.4): set with a topic, used without one; an alias never
// set is a Protocol Error.
func TestTopicAlias(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	c := dialRaw(t, ts.addr, packet.V5)
	ack := c.connect(packet.Connect{ClientID: "alias", CleanStart: true}, 0)
	if ack.Props.TopicAliasMaximum != 16 {
		t.Fatalf("topic alias maximum %d, want 16", ack.Props.TopicAliasMaximum)
	}
	for i, topic := range []string{"sensors/long/topic", "", ""} {
		p := &packet.Publish{QoS: 1, ID: uint16(i + 1), Topic: topic, Payload: []byte{byte(i)}}
		p.Props.TopicAlias = 3
		p.Props.Mark(packet.PropTopicAlias)
		c.send(p)
		if a, ok := c.expect(5 * time.Second).(*packet.Ack); !ok || a.Code != 0 {
			t.Fatalf("got %+v, want PUBACK", a)
		}
	}
	for i, m := range ts.waitMessages(t, 3) {
		if !bytes.Equal(m.GetData(), []byte{byte(i)}) {
			t.Fatalf("message %d: %v", i, m.GetData())
		}
	}
	p := &packet.Publish{Topic: "", Payload: []byte("x")}
	p.Props.TopicAlias = 4
	p.Props.Mark(packet.PropTopicAlias)
	c.send(p)
	got := c.expectClosed(5 * time.Second)
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.ProtocolError {
		t.Fatalf("got %v, want DISCONNECT 0x82", got)
	}
}

// After UNSUBSCRIBE no new command is sent, and the PUBACK of one in flight still
// deletes it (§3.10.4); a command larger than the client's Maximum Packet Size is
// not sent but dead-lettered (5.0 §3.1.2.11.4).
func TestCommandsUnsubscribeAndSize(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	ts.queueCommand(t, "un", command(1), 0)
	c := dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "un", CleanStart: true}, 0)
	c.subscribe("command/un/#", 1)
	p := c.expectPublish()
	c.send(&packet.Unsubscribe{ID: 10, Filters: []string{"command/un/#", "command/other/#"}})
	u, ok := c.expect(5 * time.Second).(*packet.Unsuback)
	if !ok || len(u.Codes) != 2 || u.Codes[0] != packet.Success || u.Codes[1] != packet.NoSubscriptionExisted {
		t.Fatalf("got %+v, want UNSUBACK 0x00 0x11", u)
	}
	ts.queueCommand(t, "un", command(2), 0)
	c.expectNothing(300 * time.Millisecond)
	c.send(&packet.Ack{Kind: packet.PUBACK, ID: p.ID})
	ts.waitQueued(t, "un", 1) // command 2 stays for the next subscriber

	s := dialRaw(t, ts.addr, packet.V5)
	cp := packet.Connect{ClientID: "small", CleanStart: true}
	cp.Props.MaximumPacketSize = 100
	cp.Props.Mark(packet.PropMaximumPacketSize)
	s.connect(cp, 0)
	big := command(1)
	big.Data = [][]byte{bytes.Repeat([]byte("x"), 200)}
	ts.queueCommand(t, "small", big, 0)
	ts.queueCommand(t, "small", amqp.NewMessage([]byte("fits")), 0)
	s.subscribe("command/small/#", 1)
	if p := s.expectPublish(); string(p.Payload) != "fits" {
		t.Fatalf("got %q, want the command that fits", p.Payload)
	}
	ts.waitQueued(t, "small", 1) // the dead letter is committed after the next is sent
	dead, err := ts.st.CommandDeadLetters("small", 10)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].Reason, "maximum packet size") {
		t.Fatalf("dead letters %+v, %v; want the large one", dead, err)
	}
}

// topic-alias-maximum 0: none announced, any alias is 0x94.
func TestTopicAliasOff(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true, TopicAliasMaximum: -1}, store.Options{})
	c := dialRaw(t, ts.addr, packet.V5)
	if ack := c.connect(packet.Connect{ClientID: "noalias", CleanStart: true}, 0); ack.Props.Has(packet.PropTopicAliasMaximum) {
		t.Fatalf("CONNACK announces topic alias maximum %d", ack.Props.TopicAliasMaximum)
	}
	p := &packet.Publish{Topic: "a", Payload: []byte("x")}
	p.Props.TopicAlias = 1
	p.Props.Mark(packet.PropTopicAlias)
	c.send(p)
	got := c.expectClosed(5 * time.Second)
	if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.TopicAliasInvalid {
		t.Fatalf("got %v, want DISCONNECT 0x94", got)
	}
}

// A session resumed with a full window of unacknowledged commands gets them again
// at once (they fill the window already; nothing waits for room).
func TestCommandsResentWithFullWindow(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true, CommandInflight: 2}, store.Options{})
	for i := 1; i <= 3; i++ {
		ts.queueCommand(t, "full", command(i), 0)
	}
	cp := packet.Connect{ClientID: "full"}
	c := dialRaw(t, ts.addr, packet.V311)
	c.connect(cp, 0)
	c.subscribe("command/full/#", 1)
	a, b := c.expectPublish(), c.expectPublish()
	c.expectNothing(200 * time.Millisecond)
	c.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c = dialRaw(t, ts.addr, packet.V311)
		if ack := c.connect(cp, 0); ack.SessionPresent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no session after reconnecting")
		}
		c.nc.Close()
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []*packet.Publish{a, b} {
		if p := c.expectPublish(); !p.Dup || p.ID != want.ID || !bytes.Equal(p.Payload, want.Payload) {
			t.Fatalf("got %+v, want %q again with DUP and id %d", p, want.Payload, want.ID)
		}
		c.send(&packet.Ack{Kind: packet.PUBACK, ID: want.ID})
	}
	if p := c.expectPublish(); p.Dup || string(p.Payload) != "cmd 3" {
		t.Fatalf("got %+v, want cmd 3", p)
	}
}

// One connection receives the commands of at most maxStreams devices: more get 0x97
// Quota exceeded (3.1.1: 0x80); another filter for a device already served is fine.
func TestCommandStreamsBounded(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	c := dialRaw(t, ts.addr, packet.V5)
	c.connect(packet.Connect{ClientID: "many", CleanStart: true}, 0)
	subs := make([]packet.Subscription, maxStreams+1)
	for i := range subs {
		subs[i] = packet.Subscription{Filter: fmt.Sprintf("command/d%d/#", i), QoS: 1}
	}
	c.send(&packet.Subscribe{ID: 5, Subs: subs})
	a, ok := c.expect(5 * time.Second).(*packet.Suback)
	if !ok || len(a.Codes) != maxStreams+1 || a.Codes[maxStreams-1] != 1 || a.Codes[maxStreams] != packet.QuotaExceeded {
		t.Fatalf("got %+v, want %d granted and 0x97", a, maxStreams)
	}
	if code := c.subscribe("command//d0/req/#", 1); code != 1 {
		t.Fatalf("SUBACK 0x%02x for a second filter of a served device, want 1", byte(code))
	}
}

// A new connection taking over the client id (§3.1.4) takes over the session too:
// the commands the old one had not acknowledged come again with DUP. A session whose
// expiry interval has passed is gone: no session present, nothing resent.
func TestCommandsSessionTakeoverAndExpiry(t *testing.T) {
	ts := startServer(t, Config{AllowAnonymous: true}, store.Options{})
	ts.queueCommand(t, "tk", command(1), 0)
	ts.queueCommand(t, "tk", command(2), 0)
	cp := packet.Connect{ClientID: "tk"}
	cp.Props.SessionExpiry = 1
	cp.Props.Mark(packet.PropSessionExpiry)
	a := dialRaw(t, ts.addr, packet.V5)
	a.connect(cp, 0)
	a.subscribe("command/tk/#", 1)
	p1, p2 := a.expectPublish(), a.expectPublish()

	b := dialRaw(t, ts.addr, packet.V5)
	if ack := b.connect(cp, 0); !ack.SessionPresent {
		t.Fatal("the new connection did not get the session")
	}
	if got := a.expectClosed(5 * time.Second); len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.SessionTakenOver {
		t.Fatalf("old connection got %v, want DISCONNECT 0x8E", got)
	}
	for _, want := range []*packet.Publish{p1, p2} {
		if p := b.expectPublish(); !p.Dup || p.ID != want.ID || !bytes.Equal(p.Payload, want.Payload) {
			t.Fatalf("got %+v, want %q again with DUP", p, want.Payload)
		}
	}
	b.nc.Close()

	// One second of session expiry: poll until the session is gone. Each connection
	// renews the session, so the polls are further apart than the expiry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(1300 * time.Millisecond)
		c := dialRaw(t, ts.addr, packet.V5)
		ack := c.connect(cp, 0)
		if !ack.SessionPresent {
			c.expectNothing(300 * time.Millisecond) // no subscription, nothing resent
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session still present 10 s after its 1 s expiry")
		}
		c.nc.Close()
	}
	if n := ts.queued(t, "tk"); n != 2 {
		t.Fatalf("%d commands queued, want both (never acknowledged)", n)
	}
}
