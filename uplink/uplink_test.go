package uplink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/message"
	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestRabbitMQ forwards through a real RabbitMQ 3.10 node, shared by the subtests
// (starting one costs 6–10 s). Each subtest uses its own queues.
//
// Not covered here: the rejected, released and modified outcomes. RabbitMQ 3.10 never
// answers them (see cloudtest.WithQueueLimit); they need a Proton test server.
func TestRabbitMQ(t *testing.T) {
	b := cloudtest.StartRabbitMQ(t,
		// May not declare (configure) the queue "forbidden", so may not attach to it.
		cloudtest.WithUser(partialUser, partialPassword, "^(?!forbidden).*", ".*", ".*"),
		cloudtest.WithUser(failoverUser, failoverPassword, ".*", ".*", ".*"))

	t.Run("forward", func(t *testing.T) { testForward(t, b) })
	t.Run("order", func(t *testing.T) { testOrder(t, b) })
	t.Run("large messages", func(t *testing.T) { testLargeMessages(t, b) })
	t.Run("dead letters", func(t *testing.T) { testDeadLetters(t, b) })
	t.Run("wrong password", func(t *testing.T) { testWrongPassword(t, b) })
	t.Run("untrusted CA", func(t *testing.T) { testUntrustedCA(t, b) })
	t.Run("refused link", func(t *testing.T) { testRefusedLink(t, b) })
	t.Run("held address", func(t *testing.T) { testHeldAddress(t, b) })
	t.Run("external and rotation", func(t *testing.T) { testExternalRotation(t, b) })
	t.Run("source annotation", func(t *testing.T) { testSourceAnnotation(t, b) })
	t.Run("rate limit", func(t *testing.T) { testRateLimit(t, b) })
	t.Run("idle timeout", func(t *testing.T) { testIdleTimeout(t, b) })
	t.Run("drain rate", func(t *testing.T) { testDrainRate(t, b) })
	t.Run("priority drain", func(t *testing.T) { testPriorityDrain(t, b) })
	t.Run("priority overtake", func(t *testing.T) { testPriorityOvertake(t, b) })
	t.Run("store closed", func(t *testing.T) { testStoreClosed(t, b) })
	t.Run("outage", func(t *testing.T) { testOutage(t, b) })
	t.Run("failover", func(t *testing.T) { testFailover(t, b) }) // last: restarts the node
}

// testForward checks that a message arrives as the device sent it, plus the source
// annotation.
func testForward(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	created := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	msgs := []*amqp.Message{
		{
			Header: &amqp.MessageHeader{Durable: true, Priority: 7},
			Properties: &amqp.MessageProperties{
				MessageID:     "m-1",
				CorrelationID: uint64(42),
				ContentType:   ptr("application/json"),
				Subject:       ptr("temperature"),
				CreationTime:  &created,
			},
			ApplicationProperties: map[string]any{"sensor": "t1", "celsius": 21.5, "count": int64(3), "ok": true},
			Annotations:           amqp.Annotations{"x-opt-device": "kept"},
			DeliveryAnnotations:   amqp.Annotations{"x-opt-hop": "dropped"},
			Data:                  [][]byte{[]byte(`{"t":21.5}`)},
		},
		{Properties: &amqp.MessageProperties{MessageID: "m-2"}, Value: "an amqp-value string"},
		// One data section: RabbitMQ 3.10 returns several in reverse order (a broker
		// bug); message_test.go checks that the uplink keeps them in order.
		{Properties: &amqp.MessageProperties{MessageID: "m-3"}, Data: [][]byte{{0, 1, 2}}},
		{Properties: &amqp.MessageProperties{MessageID: "m-4"}, Sequence: [][]any{{"a", int64(1)}}},
		{
			Properties:  &amqp.MessageProperties{MessageID: "m-5"},
			Annotations: amqp.Annotations{SourceAnnotation: "spoofed"},
			Data:        [][]byte{[]byte("source annotation replaced")},
		},
	}
	appendMessages(t, st, "forward", "device-1", msgs...)
	cfg, _ := testConfig(t, b)
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)

	got := b.Receive(t, "/queue/forward", len(msgs), 20*time.Second)
	for i, g := range got {
		want := msgs[i]
		if g.Annotations[SourceAnnotation] != "device-1" {
			t.Errorf("message %d: annotation %s: got %v, want %q", i, SourceAnnotation, g.Annotations[SourceAnnotation], "device-1")
		}
		if len(g.DeliveryAnnotations) != 0 {
			t.Errorf("message %d: got delivery-annotations %v, want none", i, g.DeliveryAnnotations)
		}
		for k, v := range want.Annotations {
			if k == SourceAnnotation {
				continue
			}
			if g.Annotations[k] != v {
				t.Errorf("message %d: annotation %v: got %v, want %v", i, k, g.Annotations[k], v)
			}
		}
		if g.Properties != nil && g.Properties.CreationTime != nil {
			// go-amqp decodes timestamps in the local time zone.
			g.Properties.CreationTime = ptr(g.Properties.CreationTime.UTC())
		}
		if !reflect.DeepEqual(g.Properties, want.Properties) {
			t.Errorf("message %d: properties:\ngot  %+v\nwant %+v", i, g.Properties, want.Properties)
		}
		if !reflect.DeepEqual(g.ApplicationProperties, want.ApplicationProperties) {
			t.Errorf("message %d: application-properties: got %v, want %v", i, g.ApplicationProperties, want.ApplicationProperties)
		}
		if !reflect.DeepEqual(g.Data, want.Data) || !reflect.DeepEqual(g.Value, want.Value) || !reflect.DeepEqual(g.Sequence, want.Sequence) {
			t.Errorf("message %d: body: got data %q value %v sequence %v, want data %q value %v sequence %v",
				i, g.Data, g.Value, g.Sequence, want.Data, want.Value, want.Sequence)
		}
		if want.Header != nil && (g.Header == nil || g.Header.Durable != want.Header.Durable || g.Header.Priority != want.Header.Priority) {
			t.Errorf("message %d: header: got %+v, want %+v", i, g.Header, want.Header)
		}
	}
	b.ExpectEmpty(t, "/queue/forward", 300*time.Millisecond)
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	s := u.Status()
	if s.State != StateConnected || s.Forwarded != uint64(len(msgs)) || s.ConnectedSince.IsZero() {
		t.Errorf("status: got %+v, want connected with %d forwarded", s, len(msgs))
	}
	if n := len(logs.lines("level=INFO", "msg=connected")); n != 1 {
		t.Errorf("got %d 'connected' lines, want 1:\n%s", n, logs)
	}
	if warns := logs.lines("level=WARN"); len(warns) > 0 {
		t.Errorf("got warnings, want none:\n%s", strings.Join(warns, "\n"))
	}
}

// testSourceAnnotation checks Config.SourceAnnotation at the broker: another key
// carries the source, none leaves message-annotations out unless the device set some;
// a device's own value under the gateway's key is dropped either way.
func testSourceAnnotation(t *testing.T, b *cloudtest.Broker) {
	for _, tt := range []struct {
		key  string
		want []amqp.Annotations // per message, as RabbitMQ delivers them
	}{
		{"x-opt-device-id", []amqp.Annotations{
			{"x-opt-device-id": "device-1"},
			{"x-opt-device-id": "device-1", "x-opt-kept": "k"},
		}},
		// A device key that is not the gateway's is the device's own: kept.
		{NoSourceAnnotation, []amqp.Annotations{nil, {"x-opt-device-id": "spoofed", "x-opt-kept": "k"}}},
	} {
		t.Run(tt.key, func(t *testing.T) {
			st := openStore(t, false)
			queue := "source-" + tt.key
			appendMessages(t, st, queue, "device-1",
				&amqp.Message{Properties: &amqp.MessageProperties{MessageID: "m-1"}, Value: "plain"},
				&amqp.Message{
					Properties:  &amqp.MessageProperties{MessageID: "m-2"},
					Annotations: amqp.Annotations{SourceAnnotation: "spoofed", "x-opt-device-id": "spoofed", "x-opt-kept": "k"},
					Value:       "annotated",
				})
			cfg, _ := testConfig(t, b)
			cfg.SourceAnnotation = tt.key
			log, _ := newLogger()
			startUplink(t, cfg, st, log)
			got := b.Receive(t, "/queue/"+queue, 2, 20*time.Second)
			for i, g := range got {
				// RabbitMQ 3.10 adds nothing of its own to a message's annotations
				// on this path: what arrives is what the uplink sent.
				if len(g.Annotations) == 0 && tt.want[i] == nil {
					continue
				}
				if !reflect.DeepEqual(g.Annotations, tt.want[i]) {
					t.Errorf("message %d: annotations %v, want %v", i, g.Annotations, tt.want[i])
				}
			}
		})
	}
}

// testOrder interleaves three addresses and checks that each arrives in order, while
// the uplink has many messages in flight.
func testOrder(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	cfg, _ := testConfig(t, b)
	cfg.InFlight = 64
	u := startUplink(t, cfg, st, nil)
	const perAddress = 300
	addrs := []string{"order-a", "order-b", "order-c"}
	// Append while the uplink runs, in small commits, so that reading, notification
	// and sending interleave.
	for i := range perAddress {
		for _, a := range addrs {
			appendMessages(t, st, a, "dev", &amqp.Message{
				ApplicationProperties: map[string]any{"n": int64(i)},
				Data:                  [][]byte{fmt.Appendf(nil, "%s %d", a, i)},
			})
		}
	}
	for _, a := range addrs {
		got := b.Receive(t, "/queue/"+a, perAddress, 20*time.Second)
		for i, m := range got {
			if n := m.ApplicationProperties["n"]; n != int64(i) {
				t.Fatalf("%s: message %d: got n=%v, want %d (order lost)", a, i, n, i)
			}
		}
		b.ExpectEmpty(t, "/queue/"+a, 100*time.Millisecond)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if s := u.Status(); s.Forwarded != 3*perAddress {
		t.Errorf("forwarded: got %d, want %d", s.Forwarded, 3*perAddress)
	}
}

// testLargeMessages sends messages of up to three times the window's bytes on two
// addresses at once: a message takes a token of the window per tokenBytes (see
// window), the two lanes compete for the window with takes of several tokens, and
// every message arrives, in order per address.
func testLargeMessages(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	cfg, _ := testConfig(t, b)
	cfg.InFlight = 4 // 4 tokens: a message of 3 × tokenBytes or more is sent alone
	addrs := []string{"large-a", "large-b"}
	sizes := []int{100, 3*tokenBytes + 1, tokenBytes, 10, 12 * tokenBytes, 2 * tokenBytes, 1}
	const rounds = 5
	for i := range rounds {
		for j, size := range sizes {
			for _, a := range addrs {
				body := bytes.Repeat([]byte{byte('a' + j)}, size)
				appendMessages(t, st, a, "dev", &amqp.Message{
					ApplicationProperties: map[string]any{"n": int64(i*len(sizes) + j)},
					Data:                  [][]byte{body},
				})
			}
		}
	}
	startUplink(t, cfg, st, nil)
	for _, a := range addrs {
		got := b.Receive(t, "/queue/"+a, rounds*len(sizes), 30*time.Second)
		for i, m := range got {
			size := sizes[i%len(sizes)]
			if n := m.ApplicationProperties["n"]; n != int64(i) || len(m.Data) != 1 || len(m.Data[0]) != size {
				t.Fatalf("%s: message %d: got n=%v with %d data sections, want n=%d with one of %d bytes", a, i, n, len(m.Data), i, size)
			}
		}
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
}

// testDeadLetters checks that payloads that cannot be sent are dead-lettered with a
// reason and do not hold up the others.
func testDeadLetters(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	good := &amqp.Message{Data: [][]byte{[]byte("good")}}
	expired := &amqp.Message{Header: &amqp.MessageHeader{TTL: time.Second}, Data: [][]byte{[]byte("expired")}}
	goodPayload, _ := good.MarshalBinary()
	expiredPayload, _ := expired.MarshalBinary()
	appendPayloads(t, st, "dead", "dev", []byte{0x00, 0x53, 0x75, 0xff}, goodPayload)
	received := time.Now().Add(-time.Hour)
	if err := st.Append(t.Context(), &store.Message{Address: "dead", Source: "dev", Received: received, Payload: expiredPayload,
		Expires: message.ExpiresAt(expiredPayload, received)}); err != nil {
		t.Fatal(err)
	}
	appendPayloads(t, st, "", "dev", goodPayload)
	appendPayloads(t, st, "dead", "dev", goodPayload)

	cfg, _ := testConfig(t, b)
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)
	b.Receive(t, "/queue/dead", 2, 20*time.Second)
	b.ExpectEmpty(t, "/queue/dead", 200*time.Millisecond)
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	dls, err := st.DeadLetters()
	if err != nil {
		t.Fatal(err)
	}
	// The expired message never reaches the uplink: the store drops it (and counts it)
	// when its header ttl, counted from when it was received, has run out.
	if n := st.Stats().Expired; n != 1 {
		t.Errorf("store expired %d messages, want 1", n)
	}
	wantReasons := []string{"cannot decode payload", "message has no address"}
	if len(dls) != len(wantReasons) {
		t.Fatalf("got %d dead letters, want %d: %+v", len(dls), len(wantReasons), dls)
	}
	for i, dl := range dls {
		if !strings.Contains(dl.Reason, wantReasons[i]) {
			t.Errorf("dead letter %d: got reason %q, want it to contain %q", i, dl.Reason, wantReasons[i])
		}
	}
	if s := u.Status(); s.DeadLettered != 2 || s.Forwarded != 2 {
		t.Errorf("status: got %d dead-lettered, %d forwarded, want 2, 2", s.DeadLettered, s.Forwarded)
	}
	// One warn line for the first; the next within deadLetterLogEvery is counted.
	if n := len(logs.lines("level=WARN", "dead-lettered")); n != 1 {
		t.Errorf("got %d dead-letter warn lines, want 1:\n%s", n, logs)
	}
}

// testWrongPassword checks that a refused login is logged once per attempt, retried,
// and recovers when the password file is fixed. The password never appears in logs.
func testWrongPassword(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	appendMessages(t, st, "password", "dev", amqp.NewMessage([]byte("after the fix")))
	cfg, pwFile := testConfig(t, b)
	writeFile(t, pwFile, "wrong-password\n")
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)

	// RabbitMQ answers a failed login after about 3 s.
	checkFor(t, 20*time.Second, func() bool { return u.Status().Failures >= 2 }, func() string {
		return fmt.Sprintf("status %+v, want 2 failures", u.Status())
	})
	checkLogBounded(t, logs, u.Status().Failures, "SASL")
	if s := u.Status(); s.State != StateWaiting && s.State != StateConnecting {
		t.Errorf("state: got %v, want waiting or connecting", s.State)
	}

	writeFile(t, pwFile, b.Password+"\n")
	b.Receive(t, "/queue/password", 1, 20*time.Second)
	checkFor(t, 5*time.Second, func() bool { return u.Status().State == StateConnected }, func() string {
		return fmt.Sprintf("status %+v, want connected", u.Status())
	})
	if s := logs.String(); strings.Contains(s, b.Password) || strings.Contains(s, "wrong-password") {
		t.Errorf("a password appears in the log:\n%s", s)
	}
}

// testUntrustedCA checks the same for a broker certificate from an unknown CA.
func testUntrustedCA(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	appendMessages(t, st, "ca", "dev", amqp.NewMessage([]byte("after the fix")))
	other := cloudtest.NewCertificates(t, t.TempDir(), "nobody")
	cfg, _ := testConfig(t, b)
	cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, cfg.CAFile, readFile(t, other.CAFile))
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)

	checkFor(t, 10*time.Second, func() bool { return u.Status().Failures >= 4 }, func() string {
		return fmt.Sprintf("status %+v, want 4 failures", u.Status())
	})
	checkLogBounded(t, logs, u.Status().Failures, "x509")
	if s := u.Status(); !strings.Contains(s.LastError, "unknown authority") {
		t.Errorf("last error: got %q, want an unknown authority", s.LastError)
	}

	writeFile(t, cfg.CAFile, readFile(t, b.CAFile))
	b.Receive(t, "/queue/ca", 1, 20*time.Second)
}

// testRefusedLink checks a user who may log in but not write: RabbitMQ ends the
// session at attach. The address is held and retried on its own backoff, one warn
// line per attempt; the connection stays and the message stays stored.
func testRefusedLink(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	appendMessages(t, st, "refused", "dev", amqp.NewMessage([]byte("never")))
	cfg, pwFile := testConfig(t, b)
	cfg.User = b.RestrictedUser
	writeFile(t, pwFile, b.RestrictedPassword)
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)

	checkFor(t, 10*time.Second, func() bool {
		h := u.Status().Held
		return len(h) == 1 && h[0].Failures >= 3
	}, func() string { return fmt.Sprintf("status %+v, want /queue/refused held 3 times", u.Status()) })
	s := u.Status()
	if !strings.Contains(s.Held[0].Reason, "unauthorized-access") || s.State != StateConnected || s.Failures != 0 {
		t.Errorf("status: got %+v, want connected, /queue/refused held for unauthorized-access", s)
	}
	// The hold is in the status a moment before its line is logged.
	checkFor(t, 5*time.Second, func() bool { return len(logs.lines("level=WARN", "address held", "unauthorized-access")) >= 3 },
		func() string { return fmt.Sprintf("'address held' lines, want one per attempt:\n%s", logs) })
	if n := stored(t, st); n != 1 {
		t.Errorf("store: got %d messages, want 1 (kept)", n)
	}
}

const (
	partialUser      = "partial"
	partialPassword  = "partial-secret"
	failoverUser     = "failover"
	failoverPassword = "failover-secret"
)

// testHeldAddress checks that a queue the user may not use holds only its own
// messages: RabbitMQ ends that address's session, the other address keeps flowing,
// in order, and the refused messages stay stored and are retried.
func testHeldAddress(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	const n = 100
	for i := range n {
		appendMessages(t, st, "forbidden", "dev", &amqp.Message{ApplicationProperties: map[string]any{"n": int64(i)}, Data: [][]byte{[]byte("no")}})
		appendMessages(t, st, "allowed", "dev", &amqp.Message{ApplicationProperties: map[string]any{"n": int64(i)}, Data: [][]byte{[]byte("yes")}})
	}
	cfg, pwFile := testConfig(t, b)
	cfg.User = partialUser
	writeFile(t, pwFile, partialPassword)
	u := startUplink(t, cfg, st, nil)
	got := b.Receive(t, "/queue/allowed", n, 20*time.Second)
	for i, m := range got {
		if m.ApplicationProperties["n"] != int64(i) {
			t.Fatalf("message %d: got n=%v (order lost)", i, m.ApplicationProperties["n"])
		}
	}
	checkFor(t, 10*time.Second, func() bool {
		h := u.Status().Held
		return stored(t, st) == n && len(h) == 1 && h[0].Address == "/queue/forbidden" && h[0].Failures >= 2
	}, func() string {
		return fmt.Sprintf("store %d, status %+v, want %d stored and /queue/forbidden held twice", stored(t, st), u.Status(), n)
	})
}

// testExternalRotation logs in with SASL EXTERNAL (client certificate), replaces the
// certificate and key on disk while connected and checks that the uplink reconnects
// with the new one and goes on forwarding.
func testExternalRotation(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	dir := t.TempDir()
	cfg, _ := testConfig(t, b)
	cfg.User, cfg.PasswordFile = "", ""
	cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	cfg.CredentialCheck = 200 * time.Millisecond
	first := b.IssueClient(t, b.ClientName, cfg.CertFile, cfg.KeyFile)
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)
	appendMessages(t, st, "external", "dev", amqp.NewMessage([]byte("first")))
	b.Receive(t, "/queue/external", 1, 20*time.Second)
	if n := len(logs.lines("msg=connected", "sasl=EXTERNAL", "client_cert_sha256="+first)); n != 1 {
		t.Fatalf("want one connected line with the first certificate's fingerprint:\n%s", logs)
	}

	second := b.IssueClient(t, b.ClientName, cfg.CertFile, cfg.KeyFile)
	checkFor(t, 10*time.Second, func() bool {
		return len(logs.lines("msg=connected", "client_cert_sha256="+second)) == 1
	}, func() string { return "no connection with the new certificate:\n" + logs.String() })
	appendMessages(t, st, "external", "dev", amqp.NewMessage([]byte("second")))
	b.Receive(t, "/queue/external", 1, 20*time.Second)
	b.ExpectEmpty(t, "/queue/external", 200*time.Millisecond)
	if n := len(logs.lines("msg=reconnecting", "certificate")); n != 1 {
		t.Errorf("got %d reconnect lines, want 1:\n%s", n, logs)
	}
	if warns := logs.lines("level=WARN"); len(warns) > 0 {
		t.Errorf("got warnings, want a graceful reconnect:\n%s", strings.Join(warns, "\n"))
	}
	if u.Status().Forwarded != 2 {
		t.Errorf("forwarded: got %d, want 2", u.Status().Forwarded)
	}
}

// testRateLimit drains a backlog with a message rate limit and checks the rate: the
// bucket holds one second's worth, so n messages take (n - rate)/rate seconds.
func testRateLimit(t *testing.T, b *cloudtest.Broker) {
	const n, rate = 600, 200
	st := openStore(t, false)
	msgs := make([]*amqp.Message, n)
	for i := range msgs {
		msgs[i] = amqp.NewMessage([]byte("limited"))
	}
	appendMessages(t, st, "ratelimit", "dev", msgs...)
	cfg, _ := testConfig(t, b)
	cfg.RateLimit = rate
	start := time.Now()
	startUplink(t, cfg, st, nil)
	checkFor(t, 20*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store still holds %d", stored(t, st))
	})
	elapsed := time.Since(start)
	want := time.Duration(float64(n-rate) / rate * float64(time.Second))
	t.Logf("drained %d messages at a limit of %d/s in %v (want about %v)", n, rate, elapsed.Round(time.Millisecond), want)
	if elapsed < want*9/10 || elapsed > want*3/2+time.Second {
		t.Errorf("drain took %v, want about %v", elapsed, want)
	}
	b.Drain(t, "/queue/ratelimit", 300*time.Millisecond)
}

// testIdleTimeout freezes the broker (SIGSTOP) under a connected uplink: the idle
// time-out must notice within about twice its value, and the uplink must recover
// when the broker runs again.
func testIdleTimeout(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	cfg, _ := testConfig(t, b)
	cfg.IdleTimeout = 2 * time.Second
	cfg.DialTimeout = 3 * time.Second
	u := startUplink(t, cfg, st, nil)
	appendMessages(t, st, "idle", "dev", amqp.NewMessage([]byte("before")))
	b.Receive(t, "/queue/idle", 1, 20*time.Second)
	checkFor(t, 5*time.Second, func() bool { return u.Status().State == StateConnected }, func() string { return "not connected" })

	b.Pause()
	paused := time.Now()
	checkFor(t, 3*cfg.IdleTimeout, func() bool { return u.Status().State != StateConnected }, func() string {
		return fmt.Sprintf("status %+v, want the frozen broker noticed", u.Status())
	})
	noticed := time.Since(paused)
	b.Resume()
	t.Logf("frozen broker noticed after %v (idle time-out %v)", noticed.Round(time.Millisecond), cfg.IdleTimeout)
	if noticed > 2*cfg.IdleTimeout+500*time.Millisecond {
		t.Errorf("noticed after %v, want within 2×%v", noticed, cfg.IdleTimeout)
	}
	appendMessages(t, st, "idle", "dev", amqp.NewMessage([]byte("after")))
	b.Receive(t, "/queue/idle", 1, 30*time.Second)
}

// testFailover runs a second node as the fallback: with the first stopped, traffic
// moves to the second; once the first is back, the probe moves it back.
func testFailover(t *testing.T, b *cloudtest.Broker) {
	b2 := cloudtest.StartRabbitMQ(t, cloudtest.WithUser(failoverUser, failoverPassword, ".*", ".*", ".*"))
	st := openStore(t, false)
	cfg, pwFile := testConfig(t, b)
	cfg.URL = b.URL + "," + b2.URL
	cfg.User = failoverUser
	writeFile(t, pwFile, failoverPassword)
	cfg.CAFile = filepath.Join(t.TempDir(), "cas.pem")
	writeFile(t, cfg.CAFile, readFile(t, b.CAFile)+readFile(t, b2.CAFile))
	cfg.PreferredProbeInterval = 500 * time.Millisecond
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)

	send := func(body string) { appendMessages(t, st, "failover", "dev", amqp.NewMessage([]byte(body))) }
	send("to the first")
	b.Receive(t, "/queue/failover", 1, 20*time.Second)

	b.Stop()
	send("to the second")
	b2.Receive(t, "/queue/failover", 1, 30*time.Second)
	if s := u.Status(); s.EndpointIndex != 1 || s.Endpoint != b2.Addr {
		t.Errorf("status: got endpoint %d %s, want 1 %s", s.EndpointIndex, s.Endpoint, b2.Addr)
	}

	b.Start()
	checkFor(t, 20*time.Second, func() bool { s := u.Status(); return s.EndpointIndex == 0 && s.State == StateConnected }, func() string {
		return fmt.Sprintf("status %+v, want back on the first endpoint\n%s", u.Status(), logs)
	})
	send("to the first again")
	got := b.Receive(t, "/queue/failover", 1, 20*time.Second)
	if string(got[0].GetData()) != "to the first again" {
		t.Errorf("got %q, want %q", got[0].GetData(), "to the first again")
	}
	b2.ExpectEmpty(t, "/queue/failover", 200*time.Millisecond)
	if n := len(logs.lines("msg=reconnecting", "preferred endpoint is reachable again")); n != 1 {
		t.Errorf("got %d switch-back lines, want 1:\n%s", n, logs)
	}
}

// checkLogBounded checks that failures produced one warn line each, naming errText,
// and nothing else beyond the start line.
func checkLogBounded(t *testing.T, logs *logBuffer, failures int, errText string) {
	t.Helper()
	warns := logs.lines("level=WARN", "component=uplink", "err=")
	// Run may have logged the next failure after Status was read.
	if len(warns) < failures || len(warns) > failures+1 {
		t.Errorf("got %d warn lines for %d failed attempts, want one each:\n%s", len(warns), failures, logs)
	}
	for _, l := range warns {
		if !strings.Contains(l, errText) {
			t.Errorf("warn line does not name the cause %q: %s", errText, l)
		}
	}
	if all := logs.lines(); len(all) > len(warns)+1 {
		t.Errorf("got %d log lines, want the start line and one per failure:\n%s", len(all), logs)
	}
}

// testDrainRate measures how fast a backlog of 10,000 messages (100-byte bodies)
// drains from a store with fsync to RabbitMQ, until the store is empty.
func testDrainRate(t *testing.T, b *cloudtest.Broker) {
	const n = 10000
	st := openStore(t, true)
	payload := make([]byte, 100)
	msgs := make([]*amqp.Message, n)
	for i := range msgs {
		msgs[i] = &amqp.Message{Properties: &amqp.MessageProperties{MessageID: uint64(i)}, Data: [][]byte{payload}}
	}
	appendMessages(t, st, "drain", "dev", msgs...)
	cfg, _ := testConfig(t, b)
	start := time.Now()
	startUplink(t, cfg, st, nil)
	checkFor(t, 60*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store still holds %d messages", stored(t, st))
	})
	elapsed := time.Since(start)
	t.Logf("drained %d messages in %v: %.0f msgs/s (InFlight %d, store with fsync)", n, elapsed.Round(time.Millisecond), n/elapsed.Seconds(), DefaultInFlight)
	got := b.Receive(t, "/queue/drain", n, 30*time.Second)
	for i, m := range got {
		if m.Properties.MessageID != uint64(i) {
			t.Fatalf("message %d: got message-id %v, want %d", i, m.Properties.MessageID, i)
		}
	}
	b.ExpectEmpty(t, "/queue/drain", 200*time.Millisecond)
}

// testOutage stops the broker under a running uplink, builds a backlog, starts the
// broker again and checks that the backlog arrives exactly once.
func testOutage(t *testing.T, b *cloudtest.Broker) {
	st := openStore(t, false)
	cfg, _ := testConfig(t, b)
	log, logs := newLogger()
	u := startUplink(t, cfg, st, log)
	appendMessages(t, st, "outage", "dev", amqp.NewMessage([]byte("before")))
	b.Receive(t, "/queue/outage", 1, 20*time.Second)

	b.Stop()
	checkFor(t, 10*time.Second, func() bool { return u.Status().State == StateWaiting }, func() string {
		return fmt.Sprintf("status %+v, want waiting", u.Status())
	})
	const n = 200
	msgs := make([]*amqp.Message, n)
	for i := range msgs {
		msgs[i] = &amqp.Message{Header: &amqp.MessageHeader{Durable: true}, Properties: &amqp.MessageProperties{MessageID: uint64(i)}, Data: [][]byte{[]byte("backlog")}}
	}
	appendMessages(t, st, "outage", "dev", msgs...)
	if s := stored(t, st); s != n {
		t.Fatalf("store during outage: got %d messages, want %d", s, n)
	}
	b.Start()

	got := b.Receive(t, "/queue/outage", n, 30*time.Second)
	for i, m := range got {
		if m.Properties.MessageID != uint64(i) {
			t.Fatalf("message %d: got message-id %v, want %d", i, m.Properties.MessageID, i)
		}
	}
	b.ExpectEmpty(t, "/queue/outage", 300*time.Millisecond)
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if s := u.Status(); s.State != StateConnected || s.LastError == "" {
		t.Errorf("status after outage: got %+v, want connected with the outage as last error", s)
	}
	if n := len(logs.lines("msg=disconnected")); n != 1 {
		t.Errorf("got %d 'disconnected' lines, want 1:\n%s", n, logs)
	}
}

// testStoreClosed checks that Run gives up with an error when its store is closed.
func testStoreClosed(t *testing.T, b *cloudtest.Broker) {
	st, err := store.Open(filepath.Join(t.TempDir(), "q.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg, _ := testConfig(t, b)
	u, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := u.Run(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Run: got %v, want ErrClosed", err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func ptr[T any](v T) *T { return &v }
