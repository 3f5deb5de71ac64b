package edge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/edge/devicetest"
)

// Interop tests: independent AMQP 1.0 client stacks (Qpid Proton C and Proton Python from
// Debian) send to the in-process server; the messages the Sink receives are checked
// against what the clients sent, value by value and byte by byte.

const (
	plainUser     = "pi-0042"
	plainPassword = "correct horse battery staple"
)

// usersConfig returns a server configuration with one PLAIN user.
func usersConfig(t *testing.T, anonymous bool) Config {
	t.Helper()
	hash, err := credential.Hash(plainPassword)
	if err != nil {
		t.Fatal(err)
	}
	return Config{AllowAnonymous: anonymous, Users: map[string]string{plainUser: hash}}
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

func decode(t *testing.T, i int, d *Delivery) *amqp.Message {
	t.Helper()
	var m amqp.Message
	if err := m.UnmarshalBinary(d.Payload); err != nil {
		t.Fatalf("delivery %d: decode: %v", i, err)
	}
	return &m
}

func TestProtonCSend(t *testing.T) {
	bin := devicetest.ProtonSend(t)
	sink := &memSink{}
	addr, srv := startServer(t, Config{AllowAnonymous: true}, sink)
	host, port := splitAddr(t, addr)
	const n = 2000
	start := time.Now()
	out, err := devicetest.RunProtonSend(t, bin, host, port, "sensors/c", n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages in %s", n, time.Since(start).Round(time.Millisecond))
	if want := fmt.Sprintf("%d messages sent and acknowledged", n); strings.TrimSpace(out) != want {
		t.Errorf("send printed %q, want %q", out, want)
	}
	got := sink.deliveries()
	if len(got) != n {
		t.Fatalf("sink got %d messages, want %d", len(got), n)
	}
	for i, d := range got {
		m := decode(t, i, d)
		seq := i + 1 // send.c counts from 1
		if d.Address != "sensors/c" || d.Source != "send" {
			t.Errorf("delivery %d: address %q source %q, want sensors/c and send", i, d.Address, d.Source)
		}
		if m.Properties == nil || m.Properties.MessageID != uint64(seq) {
			t.Fatalf("delivery %d: properties %+v, want message-id ulong %d", i, m.Properties, seq)
		}
		want := map[string]any{"sequence": int32(seq)}
		if !reflect.DeepEqual(m.Value, want) {
			t.Fatalf("delivery %d: body %#v, want %#v", i, m.Value, want)
		}
		if !d.Info.HasMessageID {
			t.Errorf("delivery %d: Info.HasMessageID is false", i)
		}
	}
	if st := srv.Stats(); st.Messages != n || st.Rejected != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v, want %d messages, none rejected or dropped", st, n)
	}
}

func TestProtonCSendAbort(t *testing.T) {
	abort := devicetest.ProtonSendAbort(t)
	send := devicetest.ProtonSend(t)
	cases := []struct {
		name   string
		credit uint32
		n      int
	}{
		{"fewer than the credit", 0, 5},
		// Aborted deliveries use link credit (§2.6.14), so the server must grant more.
		{"more than the credit", 8, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := &memSink{}
			addr, _ := startServer(t, Config{AllowAnonymous: true, Credit: c.credit}, sink)
			host, port := splitAddr(t, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			out, err := devicetest.RunProtonSendContext(ctx, t, abort, host, port, "aborts", c.n)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d messages started and aborted", c.n); strings.TrimSpace(out) != want {
				t.Errorf("send-abort printed %q, want %q", out, want)
			}
			if got := len(sink.deliveries()); got != 0 {
				t.Errorf("sink got %d messages from aborted deliveries, want 0", got)
			}
			// The server still takes complete messages.
			if _, err := devicetest.RunProtonSend(t, send, host, port, "aborts", 10); err != nil {
				t.Fatal(err)
			}
			if got := len(sink.deliveries()); got != 10 {
				t.Errorf("sink got %d messages after the aborts, want 10", got)
			}
		})
	}
}

func TestProtonPython(t *testing.T) {
	type tc struct {
		name string
		opts devicetest.PythonOptions
	}
	var cases []tc
	sizes := []struct {
		name        string
		size, count int // the blocking style, a round trip per message, sends a fifth of the small ones
	}{
		{"100B", 100, 500},
		{"300KB", 300_000, 10}, // five frames at the default max-frame-size of 64 KiB
	}
	for _, style := range []devicetest.Style{devicetest.Reactor, devicetest.Blocking} {
		for _, settled := range []bool{false, true} {
			for _, sz := range sizes {
				for _, sasl := range []devicetest.SASL{devicetest.NoSASL, devicetest.Anonymous, devicetest.Plain} {
					mode := "unsettled"
					if settled {
						mode = "settled"
					}
					o := devicetest.PythonOptions{
						Style: style, Settled: settled, Size: sz.size, Count: sz.count, SASL: sasl,
						Device: fmt.Sprintf("dev-%s-%s-%s-%s", style, mode, sz.name, sasl),
					}
					if style == devicetest.Blocking && sz.count > 10 {
						o.Count = sz.count / 5
					}
					if sasl == devicetest.Plain {
						o.User, o.Password = plainUser, plainPassword
					}
					cases = append(cases, tc{fmt.Sprintf("%s/%s/%s/%s", style, mode, sz.name, sasl), o})
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sink := &memSink{}
			addr, srv := startServer(t, usersConfig(t, true), sink)
			o := c.opts
			o.Addr = addr
			r := devicetest.Python(t, o)
			t.Logf("%d messages of %d bytes in %.3fs", o.Count, o.Size, r.Elapsed)
			if len(r.Errors) != 0 || r.ExitCode != 0 {
				t.Fatalf("device errors %q (exit %d); stderr:\n%s", r.Errors, r.ExitCode, r.Stderr)
			}
			want := devicetest.Result{Sent: o.Count, Accepted: o.Count}
			if o.Settled {
				want = devicetest.Result{Sent: o.Count, SettledSent: o.Count}
			}
			if r.Sent != want.Sent || r.Accepted != want.Accepted || r.SettledSent != want.SettledSent ||
				r.Rejected+r.Released+r.Modified != 0 {
				t.Errorf("device reports %+v, want sent %d, accepted %d, settled_sent %d, nothing else",
					r, want.Sent, want.Accepted, want.SettledSent)
			}
			source := o.Device // the container-id names an anonymous device
			if o.SASL == devicetest.Plain {
				source = o.User
			}
			// Pre-settled messages are not acknowledged: the device may be gone before the
			// server has read them all.
			checkFor(t, 5*time.Second, func() bool { return len(sink.deliveries()) >= o.Count })
			checkPythonDeliveries(t, sink.deliveries(), o, source)
			if !o.Settled { // see TestStatsCountPreSettledAfterClose
				if got := srv.Stats().Messages; got != uint64(o.Count) {
					t.Errorf("stats messages = %d, want %d", got, o.Count)
				}
			}
		})
	}
}

// TestProtonPythonConcurrentDevices runs several devices of both styles on one server at
// once; each device's messages must arrive complete and in order.
func TestProtonPythonConcurrentDevices(t *testing.T) {
	sink := &memSink{}
	addr, srv := startServer(t, usersConfig(t, true), sink)
	opts := []devicetest.PythonOptions{
		{Device: "reactor-1", Count: 1000},
		{Device: "reactor-2", Count: 1000, Settled: true},
		{Device: "reactor-3", Count: 20, Size: 200_000, SASL: devicetest.Plain, User: plainUser, Password: plainPassword},
		{Device: "blocking-1", Count: 100, Style: devicetest.Blocking, SASL: devicetest.Anonymous},
	}
	var running []*devicetest.Device
	for i := range opts {
		opts[i].Addr, opts[i].Address = addr, "telemetry"
		if opts[i].Size == 0 {
			opts[i].Size = 100
		}
		running = append(running, devicetest.StartPython(t, opts[i]))
	}
	total := 0
	for i, d := range running {
		r := d.Wait()
		if len(r.Errors) != 0 || r.Accepted+r.SettledSent != opts[i].Count {
			t.Errorf("device %s: accepted %d, settled %d of %d, errors %q",
				opts[i].Device, r.Accepted, r.SettledSent, opts[i].Count, r.Errors)
		}
		total += opts[i].Count
	}
	checkFor(t, 5*time.Second, func() bool { return len(sink.deliveries()) == total })
	byDevice := make(map[string][]*Delivery)
	for _, d := range sink.deliveries() {
		m := decode(t, 0, d)
		dev, _ := m.ApplicationProperties["device"].(string)
		byDevice[dev] = append(byDevice[dev], d)
	}
	for _, o := range opts {
		source := o.Device
		if o.SASL == devicetest.Plain {
			source = o.User
		}
		t.Run(o.Device, func(t *testing.T) { checkPythonDeliveries(t, byDevice[o.Device], o, source) })
	}
	if st := srv.Stats(); st.ConnectionsTotal != uint64(len(opts)) {
		t.Errorf("stats connections total = %d, want %d", st.ConnectionsTotal, len(opts))
	}
}

// TestProtonPythonTooLarge sends a message above the server's max-message-size: the
// server detaches the link with amqp:link:message-size-exceeded and stores nothing.
func TestProtonPythonTooLarge(t *testing.T) {
	for _, style := range []devicetest.Style{devicetest.Reactor, devicetest.Blocking} {
		t.Run(string(style), func(t *testing.T) {
			sink := &memSink{}
			addr, _ := startServer(t, Config{AllowAnonymous: true, MaxMessageSize: 100_000}, sink)
			r := devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Style: style, Count: 2, Size: 150_000, Timeout: 10 * time.Second})
			if r.ExitCode == 0 || !strings.Contains(strings.Join(r.Errors, " "), "amqp:link:message-size-exceeded") {
				t.Fatalf("exit %d, errors %q; want amqp:link:message-size-exceeded", r.ExitCode, r.Errors)
			}
			t.Logf("errors: %q", r.Errors)
			if n := len(sink.deliveries()); n != 0 {
				t.Errorf("sink got %d messages, want 0", n)
			}
		})
	}
}

// TestProtonPythonStoreFull checks that Proton devices see the rejection, with its
// condition, when the Sink cannot store.
func TestProtonPythonStoreFull(t *testing.T) {
	for _, style := range []devicetest.Style{devicetest.Reactor, devicetest.Blocking} {
		t.Run(string(style), func(t *testing.T) {
			sink := &memSink{fail: fmt.Errorf("commit: %w", errFull)}
			addr, _ := startServer(t, Config{AllowAnonymous: true}, sink)
			const n = 20
			r := devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Style: style, Count: n})
			if len(r.Errors) != 0 || r.Rejected != n || r.Accepted != 0 || len(r.Conditions) != n {
				t.Fatalf("device reports %+v, want %d rejected", r, n)
			}
			for _, c := range r.Conditions {
				if !strings.HasPrefix(c, "amqp:resource-limit-exceeded") {
					t.Fatalf("rejection %q, want amqp:resource-limit-exceeded", c)
				}
			}
		})
	}
}

// checkPythonDeliveries checks that the Sink holds exactly the messages a Python device
// sent, in order: each one's stored bytes end with the body's data section, and
// decoding gives back the properties and body values the device encoded.
func checkPythonDeliveries(t *testing.T, got []*Delivery, o devicetest.PythonOptions, source string) {
	t.Helper()
	if len(got) != o.Count {
		t.Fatalf("sink got %d messages, want %d", len(got), o.Count)
	}
	for i, d := range got {
		body := devicetest.Body(i, o.Size)
		if d.Address != "telemetry" || d.Source != source {
			t.Errorf("delivery %d: address %q source %q, want telemetry and %q", i, d.Address, d.Source, source)
		}
		// A data section is the descriptor 0x00 0x53 0x75, then vbin8 or vbin32 (§1.6.19).
		section := []byte{0x00, 0x53, 0x75, 0xb0, byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
		if len(body) <= 255 {
			section = []byte{0x00, 0x53, 0x75, 0xa0, byte(len(body))}
		}
		if !bytes.HasSuffix(d.Payload, append(section, body...)) {
			t.Fatalf("delivery %d: stored bytes do not end with the data section the device sent", i)
		}
		m := decode(t, i, d)
		wantProps := map[string]any{"device": o.Device, "seq": int64(i)}
		if !reflect.DeepEqual(m.ApplicationProperties, wantProps) {
			t.Fatalf("delivery %d: application-properties %#v, want %#v", i, m.ApplicationProperties, wantProps)
		}
		if m.Properties == nil || m.Properties.MessageID != fmt.Sprintf("%s:%d", o.Device, i) {
			t.Fatalf("delivery %d: properties %+v, want message-id %s:%d", i, m.Properties, o.Device, i)
		}
		if len(m.Data) != 1 || !bytes.Equal(m.Data[0], body) || m.Value != nil || m.Sequence != nil {
			t.Fatalf("delivery %d: body is %d data sections, value %T, want one data section of %d bytes",
				i, len(m.Data), m.Value, len(body))
		}
	}
}

// TestProtonPythonRefused checks that devices with bad credentials are refused with an
// authentication error while a device with good credentials, connected at the same
// time, keeps sending.
func TestProtonPythonRefused(t *testing.T) {
	// The Sink holds every acknowledgement until the bad devices are done, so the good
	// device is connected, with messages in flight, the whole time.
	sink := &memSink{hold: make(chan struct{})}
	addr, srv := startServer(t, usersConfig(t, false), sink)
	good := devicetest.PythonOptions{
		Addr: addr, Address: "telemetry", Device: "good", Count: 3000, Size: 100,
		SASL: devicetest.Plain, User: plainUser, Password: plainPassword,
	}
	running := devicetest.StartPython(t, good)
	checkFor(t, 10*time.Second, func() bool { return len(sink.deliveries()) >= 64 })

	cases := []struct {
		name    string
		opts    devicetest.PythonOptions
		want    string // in the device's error
		refused bool   // the server refuses; otherwise the device gives up by itself
	}{
		{"wrong password/reactor", devicetest.PythonOptions{SASL: devicetest.Plain, User: plainUser, Password: "wrong"},
			"amqp:unauthorized-access", true},
		{"wrong password/blocking", devicetest.PythonOptions{Style: devicetest.Blocking, SASL: devicetest.Plain, User: plainUser, Password: "wrong"},
			"amqp:unauthorized-access", true},
		{"unknown user", devicetest.PythonOptions{SASL: devicetest.Plain, User: "pi-9999", Password: plainPassword},
			"amqp:unauthorized-access", true},
		// The server offers only PLAIN; Proton finds no mechanism it may use and hangs up.
		{"anonymous when off", devicetest.PythonOptions{SASL: devicetest.Anonymous},
			"amqp:unauthorized-access", false},
		// §5.1: the server answers the AMQP header with the SASL header and closes.
		{"no sasl when off", devicetest.PythonOptions{SASL: devicetest.NoSASL},
			"amqp:connection:framing-error", true},
	}
	refused := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			o.Addr, o.Device, o.Count, o.Timeout = addr, "bad", 10, 10*time.Second
			r := devicetest.Python(t, o)
			if r.ExitCode == 0 || len(r.Errors) == 0 {
				t.Fatalf("device with bad credentials: exit %d, errors %q; want an error", r.ExitCode, r.Errors)
			}
			if !strings.Contains(strings.Join(r.Errors, "; "), c.want) {
				t.Errorf("errors %q, want %q", r.Errors, c.want)
			}
			if r.Sent != 0 || r.Accepted != 0 {
				t.Errorf("refused device sent %d, accepted %d, want 0", r.Sent, r.Accepted)
			}
			t.Logf("refused in %.3fs: %q", r.Elapsed, r.Errors)
		})
		if c.refused {
			refused++
		}
	}
	select {
	case <-running.Done():
		t.Fatal("the good device ended while the bad ones were refused")
	default:
	}
	close(sink.hold)

	r := running.Wait()
	if len(r.Errors) != 0 || r.Accepted != good.Count {
		t.Fatalf("good device: accepted %d of %d, errors %q", r.Accepted, good.Count, r.Errors)
	}
	checkPythonDeliveries(t, sink.deliveries(), good, plainUser)
	if got := srv.Stats().Refused; got != uint64(refused) {
		t.Errorf("stats refused = %d, want %d", got, refused)
	}
}

// TestStatsCountPreSettledAfterClose checks that pre-settled messages the Sink stored are
// counted even when the device closes its connection right after sending them, before
// the Sink has completed them all.
func TestStatsCountPreSettledAfterClose(t *testing.T) {
	sink := &memSink{}
	addr, srv := startServer(t, Config{AllowAnonymous: true}, sink)
	const n = 500
	r := devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Count: n, Settled: true})
	if len(r.Errors) != 0 || r.SettledSent != n {
		t.Fatalf("device: sent %d pre-settled, errors %q", r.SettledSent, r.Errors)
	}
	checkFor(t, 5*time.Second, func() bool { return len(sink.deliveries()) == n })
	deadline := time.Now().Add(time.Second)
	for srv.Stats().Messages != n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := srv.Stats(); st.Messages != n {
		t.Fatalf("the Sink stored %d pre-settled messages but Stats().Messages = %d", n, st.Messages)
	}
}
