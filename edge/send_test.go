package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/store"
)

// storeCommands adapts the real store to Commands, as cmd/shadowgw does.
type storeCommands struct{ st *store.Store }

func (sc storeCommands) Watch(device string, wake func()) func() {
	w := sc.st.WatchCommands(device)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-w.C:
				wake()
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop); wg.Wait(); w.Stop() }
}

func (sc storeCommands) Read(device string, after uint64, max int) ([]Command, error) {
	cs, err := sc.st.ReadCommands(device, after, max)
	out := make([]Command, len(cs))
	for i, c := range cs {
		out[i] = Command{Seq: c.Seq, Payload: c.Payload}
	}
	return out, err
}

func (sc storeCommands) Settle(device string, seq uint64, o Outcome, done func(error)) {
	switch o.Kind {
	case Delivered:
		sc.st.DeleteCommand(device, seq, done)
	case DeadLetter:
		sc.st.DeadLetterCommand(device, seq, o.Reason, done)
	case Rewrite:
		sc.st.RewriteCommand(device, seq, o.Payload, done)
	}
}

func commandServer(t *testing.T) (string, *Server, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := credential.Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		AllowAnonymous: true,
		Users:          map[string]string{"alice": hash, "bob": hash, "ops": hash},
		CommandAccess:  map[string][]string{"ops": {"bob"}, "": {"sensor-*"}},
	}
	ln, srv := startCommandServer(t, cfg, st)
	return ln, srv, st
}

func startCommandServer(t *testing.T, cfg Config, st *store.Store) (string, *Server) {
	t.Helper()
	srv := New(cfg, &memSink{}, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv.SetCommands(storeCommands{st}, nil)
	return serveOn(t, srv), srv
}

func queueCommand(t *testing.T, st *store.Store, dev string, body string) {
	t.Helper()
	m := amqp.NewMessage([]byte(body))
	m.Properties = &amqp.MessageProperties{MessageID: body}
	p, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AppendCommand(context.Background(), &store.Command{Device: dev, Payload: p}); err != nil {
		t.Fatal(err)
	}
}

func commandReceiver(t *testing.T, addr string, sasl amqp.SASLType, source string, opts *amqp.ReceiverOptions) (*amqp.Conn, *amqp.Receiver, error) {
	t.Helper()
	c := dial(t, addr, &amqp.ConnOptions{SASLType: sasl})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.NewReceiver(ctx, source, opts)
	return c, r, err
}

func receive(t *testing.T, r *amqp.Receiver) *amqp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return m
}

func TestCommandsInOrderWithCreditOne(t *testing.T) {
	addr, srv, st := commandServer(t)
	for i := 0; i < 30; i++ {
		queueCommand(t, st, "alice", fmt.Sprint("a", i))
		if i%3 == 0 {
			queueCommand(t, st, "bob", fmt.Sprint("b", i))
		}
	}
	_, r, err := commandReceiver(t, addr, amqp.SASLTypePlain("alice", "pw"), "command", &amqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		m := receive(t, r)
		if got := string(m.GetData()); got != fmt.Sprint("a", i) {
			t.Fatalf("command %d: %q", i, got)
		}
		if err := r.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// A command queued while the device is attached arrives without polling.
	queueCommand(t, st, "alice", "live")
	m := receive(t, r)
	if string(m.GetData()) != "live" {
		t.Fatalf("live command: %q", m.GetData())
	}
	r.AcceptMessage(ctx, m)
	waitFor(t, func() bool { return st.CommandStats().Delivered == 31 }, "delivered: %+v", st.CommandStats())
	if cs, _ := st.ReadCommands("bob", 0, 100); len(cs) != 10 {
		t.Fatalf("bob's queue: %d commands, want 10", len(cs))
	}
	if s := srv.CommandStats(); s.Accepted != 31 {
		t.Fatalf("server stats: %+v", s)
	}
}

func TestCommandsAccess(t *testing.T) {
	addr, _, st := commandServer(t)
	queueCommand(t, st, "bob", "for bob")
	queueCommand(t, st, "sensor-1", "for sensor")
	cases := []struct {
		name   string
		sasl   amqp.SASLType
		source string
		cond   amqp.ErrCond
	}{
		{"own id by name", amqp.SASLTypePlain("bob", "pw"), "command/bob", ""},
		{"another device's", amqp.SASLTypePlain("alice", "pw"), "command/bob", amqp.ErrCondUnauthorizedAccess},
		{"configured other id", amqp.SASLTypePlain("ops", "pw"), "command/bob", ""},
		{"anonymous, allowed id", amqp.SASLTypeAnonymous(), "command/sensor-1", ""},
		{"anonymous, other id", amqp.SASLTypeAnonymous(), "command/bob", amqp.ErrCondUnauthorizedAccess},
		{"anonymous, own queue", amqp.SASLTypeAnonymous(), "command", amqp.ErrCondUnauthorizedAccess},
		{"unknown source", amqp.SASLTypePlain("bob", "pw"), "telemetry", amqp.ErrCondNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, r, err := commandReceiver(t, addr, tc.sasl, tc.source, nil)
			defer c.Close()
			if tc.cond == "" {
				if err != nil {
					t.Fatalf("attach: %v", err)
				}
				receive(t, r) // not settled: stays queued
				return
			}
			var ae *amqp.Error
			if !errors.As(err, &ae) || ae.Condition != tc.cond {
				t.Fatalf("attach = %v, want %s", err, tc.cond)
			}
		})
	}
}

func TestCommandOutcomes(t *testing.T) {
	addr, _, st := commandServer(t)
	for _, b := range []string{"reject", "release", "fail", "elsewhere", "ok"} {
		queueCommand(t, st, "alice", b)
	}
	_, r, err := commandReceiver(t, addr, amqp.SASLTypePlain("alice", "pw"), "command", &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seen := map[string]int{}
	for len(seen) < 5 || seen["release"] < 2 || seen["fail"] < 2 {
		m := receive(t, r)
		b := string(m.GetData())
		seen[b]++
		switch {
		case b == "reject":
			err = r.RejectMessage(ctx, m, &amqp.Error{Condition: "app:bad-command", Description: "no such valve"})
		case b == "release" && seen[b] == 1:
			err = r.ReleaseMessage(ctx, m)
		case b == "fail" && seen[b] == 1:
			err = r.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true})
		case b == "fail":
			if m.Header == nil || m.Header.DeliveryCount != 1 {
				t.Errorf("sent again after delivery-failed: header %+v, want delivery-count 1", m.Header)
			}
			err = r.AcceptMessage(ctx, m)
		case b == "elsewhere":
			err = r.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{UndeliverableHere: true})
		default:
			err = r.AcceptMessage(ctx, m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { s := st.CommandStats(); return s.Messages == 0 && s.DeadLetters == 2 },
		"stats: %+v", st.CommandStats())
	dl, _ := st.CommandDeadLetters("alice", 10)
	if len(dl) != 2 || dl[0].Reason != "rejected by the device: app:bad-command: no such valve" ||
		dl[1].Reason != "modified by the device: undeliverable-here" {
		t.Fatalf("dead letters: %+v", dl)
	}
	if s := st.CommandStats(); s.Delivered != 3 || s.DeadLettered != 2 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestCommandSentAgainAfterConnectionLost(t *testing.T) {
	addr, _, st := commandServer(t)
	queueCommand(t, st, "alice", "c1")
	c, r, err := commandReceiver(t, addr, amqp.SASLTypePlain("alice", "pw"), "command", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, r)
	c.Close() // no outcome
	_, r2, err := commandReceiver(t, addr, amqp.SASLTypePlain("alice", "pw"), "command", nil)
	if err != nil {
		t.Fatal(err)
	}
	m2 := receive(t, r2)
	if m2.Properties.MessageID != m.Properties.MessageID {
		t.Fatalf("message-id %v, then %v", m.Properties.MessageID, m2.Properties.MessageID)
	}
	r2.AcceptMessage(context.Background(), m2)
	waitFor(t, func() bool { return st.CommandStats().Delivered == 1 }, "stats: %+v", st.CommandStats())
}

func TestCommandDrain(t *testing.T) {
	addr, _, st := commandServer(t)
	queueCommand(t, st, "alice", "c1")
	_, r, err := commandReceiver(t, addr, amqp.SASLTypePlain("alice", "pw"), "command", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	m := receive(t, r)
	r.AcceptMessage(context.Background(), m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// §2.6.7: the gateway has nothing more, uses up the credit and answers with a flow.
	if err := r.DrainCredit(ctx, nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: "+format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveOn runs srv on a loopback port until the test ends.
func serveOn(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// Issue 13, replies: a device answers a command on an anonymous-relay sender (null
// target, to names the destination); the message is stored under its to.
func TestAnonymousRelayReply(t *testing.T) {
	sink := &memSink{}
	hash, _ := credential.Hash("pw")
	srv := New(Config{Users: map[string]string{"alice": hash}, Targets: map[string][]string{"alice": {"replies/*"}}}, sink, nil)
	addr := serveOn(t, srv)
	c := dial(t, addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("alice", "pw")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "", nil)
	if err != nil {
		t.Fatalf("anonymous sender: %v", err)
	}
	reply := amqp.NewMessage([]byte("done"))
	to := "replies/app-1"
	reply.Properties = &amqp.MessageProperties{To: &to, CorrelationID: "cmd-7"}
	if err := snd.Send(ctx, reply, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	ds := sink.deliveries()
	if len(ds) != 1 || ds[0].Address != "replies/app-1" {
		t.Fatalf("stored: %+v", ds)
	}
	m := decode(t, 0, ds[0])
	if m.Properties.CorrelationID != "cmd-7" {
		t.Fatalf("correlation-id %v", m.Properties.CorrelationID)
	}
	// Without to, or to an address the device may not use: rejected, the link lives on.
	var ae *amqp.Error
	if err := snd.Send(ctx, amqp.NewMessage([]byte("nowhere")), nil); !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound {
		t.Fatalf("no to: %v, want amqp:not-found", err)
	}
	other := "billing"
	bad := amqp.NewMessage([]byte("x"))
	bad.Properties = &amqp.MessageProperties{To: &other}
	if err := snd.Send(ctx, bad, nil); !errors.As(err, &ae) || ae.Condition != amqp.ErrCondUnauthorizedAccess {
		t.Fatalf("to billing: %v, want amqp:unauthorized-access", err)
	}
	if err := snd.Send(ctx, reply, nil); err != nil {
		t.Fatalf("send after the rejections: %v", err)
	}
}

// A Proton C device (Debian's receive.c example, anonymous, no SASL) receives its
// commands in order and accepts them.
func TestCommandsProtonC(t *testing.T) {
	bin := devicetest.ProtonReceive(t)
	addr, _, st := commandServer(t)
	for i := 0; i < 20; i++ {
		queueCommand(t, st, "sensor-7", fmt.Sprint("c", i))
	}
	host, port := splitAddr(t, addr)
	out, err := devicetest.RunProtonSend(t, bin, host, port, "command/sensor-7", 20)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 21 || lines[20] != "20 messages received" {
		t.Fatalf("output:\n%s", out)
	}
	for i := 0; i < 20; i++ {
		if !strings.Contains(lines[i], fmt.Sprintf(`"c%d"`, i)) && !strings.Contains(lines[i], fmt.Sprintf(`c%d`, i)) {
			t.Fatalf("line %d: %q, want command c%d", i, lines[i], i)
		}
	}
	waitFor(t, func() bool { return st.CommandStats().Delivered == 20 }, "stats: %+v", st.CommandStats())
}
