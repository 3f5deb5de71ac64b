package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// memSink is a Sink that keeps deliveries in memory and completes them from another
// goroutine, as the store's committer does.
// errFull is a Sink's error for "no room", as the store's ErrFull is.
var errFull error = testFull{}

type testFull struct{}

func (testFull) Error() string { return "store full" }
func (testFull) Full() bool    { return true }

type memSink struct {
	mu   sync.Mutex
	got  []*Delivery
	fail error
	hold chan struct{} // when not nil, completions wait for it to be closed
}

func (m *memSink) Store(d *Delivery, done func(error)) {
	m.mu.Lock()
	err := m.fail
	if err == nil {
		m.got = append(m.got, d)
	}
	m.mu.Unlock()
	go func() {
		if m.hold != nil {
			<-m.hold
		}
		done(err)
	}()
}

func (m *memSink) deliveries() []*Delivery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Delivery(nil), m.got...)
}

// startServer runs a Server on a loopback port until the test ends.
func startServer(t testing.TB, cfg Config, sink Sink) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(cfg, sink, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), srv
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func dial(t testing.TB, addr string, opts *amqp.ConnOptions) *amqp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := amqp.Dial(ctx, "amqp://"+addr, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newSender(t testing.TB, c *amqp.Conn, addr string, opts *amqp.SenderOptions) *amqp.Sender {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	snd, err := s.NewSender(ctx, addr, opts)
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	return snd
}

func TestGoAMQPDevice(t *testing.T) {
	cases := []struct {
		name   string
		conn   *amqp.ConnOptions
		sender *amqp.SenderOptions
		size   int
		n      int
	}{
		{"no-sasl unsettled", nil, nil, 100, 500},
		{"anonymous unsettled", &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()}, nil, 100, 500},
		{"anonymous settled", &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()},
			&amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()}, 100, 500},
		{"multi-frame", &amqp.ConnOptions{MaxFrameSize: 4096}, nil, 200_000, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := &memSink{}
			addr, _ := startServer(t, Config{AllowAnonymous: true, Credit: 64}, sink)
			c := dial(t, addr, tc.conn)
			snd := newSender(t, c, "telemetry", tc.sender)
			body := bytes.Repeat([]byte{'x'}, tc.size)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i := 0; i < tc.n; i++ {
				m := amqp.NewMessage(body)
				m.ApplicationProperties = map[string]any{"seq": int64(i)}
				if err := snd.Send(ctx, m, nil); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			checkFor(t, 5*time.Second, func() bool { return len(sink.deliveries()) == tc.n })
			for i, d := range sink.deliveries() {
				var m amqp.Message
				if err := m.UnmarshalBinary(d.Payload); err != nil {
					t.Fatalf("delivery %d: %v", i, err)
				}
				if d.Address != "telemetry" {
					t.Errorf("delivery %d address = %q, want telemetry", i, d.Address)
				}
				if got := m.ApplicationProperties["seq"]; got != int64(i) {
					t.Errorf("delivery %d seq = %v, want %d (order)", i, got, i)
				}
				if !bytes.Equal(m.GetData(), body) {
					t.Errorf("delivery %d body differs (%d bytes, want %d)", i, len(m.GetData()), len(body))
				}
			}
		})
	}
}

// checkFor polls cond until it holds or the time is up.
func checkFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStoreFailureIsNotAccepted(t *testing.T) {
	sink := &memSink{fail: errors.New("disk full")}
	addr, srv := startServer(t, Config{AllowAnonymous: true}, sink)
	c := dial(t, addr, nil)
	snd := newSender(t, c, "telemetry", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := snd.Send(ctx, amqp.NewMessage([]byte("x")), nil)
	var re *amqp.Error
	if !errors.As(err, &re) || re.Condition != amqp.ErrCondInternalError {
		t.Fatalf("send = %v, want rejected with amqp:internal-error", err)
	}
	sink.mu.Lock()
	sink.fail = fmt.Errorf("commit: %w", errFull)
	sink.mu.Unlock()
	err = snd.Send(ctx, amqp.NewMessage([]byte("x")), nil)
	if !errors.As(err, &re) || re.Condition != amqp.ErrCondResourceLimitExceeded {
		t.Fatalf("send = %v, want rejected with amqp:resource-limit-exceeded", err)
	}
	if got := srv.Stats().Messages; got != 0 {
		t.Errorf("stats messages = %d, want 0", got)
	}
	if len(sink.deliveries()) != 0 {
		t.Errorf("sink holds %d, want 0", len(sink.deliveries()))
	}
}
