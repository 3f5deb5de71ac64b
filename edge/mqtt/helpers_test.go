package mqtt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
	"github.com/shadowgw/shadowgw/store"
)

// storeSink is the Sink of the tests: a real store, as cmd/shadowgw wires it.
type storeSink struct{ st *store.Store }

func (s storeSink) Append(m *Message, done func(error)) {
	s.st.AppendAsync(&store.Message{Address: m.Address, Source: m.Source, Received: m.Received, Payload: m.Payload, Expires: m.Info.ExpiresAt(m.Received)},
		func(err error) {
			if errors.Is(err, store.ErrFull) {
				err = fmt.Errorf("%w: %w", ErrFull, err)
			}
			done(err)
		})
}

func (s storeSink) Full(address string) bool { return s.st.FullFor(address) }

// storeCommands is the Commands of the tests: the store's device queues, as
// cmd/shadowgw wires them.
type storeCommands struct{ st *store.Store }

func (sc storeCommands) Watch(device string, wake func()) func() {
	w := sc.st.WatchCommands(device)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-w.C:
				wake()
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done; w.Stop() }
}

func (sc storeCommands) Read(device string, after uint64, max int) ([]Command, error) {
	cs, err := sc.st.ReadCommands(device, after, max)
	out := make([]Command, len(cs))
	for i, c := range cs {
		out[i] = Command{Seq: c.Seq, Expires: c.Expires, Payload: c.Payload}
	}
	return out, err
}

func (sc storeCommands) Delivered(device string, seq uint64, done func(error)) {
	sc.st.DeleteCommand(device, seq, done)
}

func (sc storeCommands) DeadLetter(device string, seq uint64, reason string, done func(error)) {
	sc.st.DeadLetterCommand(device, seq, reason, done)
}

// testServer is a Server on a loopback port, storing into a fresh store.
type testServer struct {
	addr string
	st   *store.Store
	srv  *Server
}

func startServer(t *testing.T, cfg Config, opts store.Options) *testServer {
	t.Helper()
	opts.NoSync = true
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the server's end, registered below
	srv := New(cfg, storeSink{st}, storeCommands{st}, nil)
	return &testServer{addr: serve(t, srv), st: st, srv: srv}
}

// serve runs srv on a loopback port until the test ends and returns its address.
func serve(t *testing.T, srv *Server) string {
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

// messages returns the stored messages, decoded.
func (ts *testServer) messages(t *testing.T) []*amqp.Message {
	t.Helper()
	ms, err := ts.st.Read(0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*amqp.Message, len(ms))
	for i, m := range ms {
		out[i] = new(amqp.Message)
		if err := out[i].UnmarshalBinary(m.Payload); err != nil {
			t.Fatalf("stored message %d does not decode: %v", m.Seq, err)
		}
	}
	return out
}

// waitMessages polls until n messages are stored.
func (ts *testServer) waitMessages(t *testing.T, n int) []*amqp.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := ts.messages(t)
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages stored, want %d", len(ms), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient speaks MQTT packet by packet, for the cases real clients do not produce.
type rawClient struct {
	t       *testing.T
	nc      net.Conn
	br      *bufio.Reader
	version byte
}

func dialRaw(t *testing.T, addr string, version byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc), version: version}
}

func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	c.sendBytes(p.Append(nil, c.version))
}

func (c *rawClient) sendBytes(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads the next packet within timeout.
func (c *rawClient) recv(timeout time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	h, body, err := packet.Read(c.br, 0)
	if err != nil {
		return nil, err
	}
	return packet.Decode(h, body, c.version)
}

func (c *rawClient) expect(timeout time.Duration) packet.Packet {
	c.t.Helper()
	p, err := c.recv(timeout)
	if err != nil {
		c.t.Fatalf("want a packet: %v", err)
	}
	return p
}

// connect sends CONNECT and expects CONNACK with code.
func (c *rawClient) connect(p packet.Connect, code packet.ReasonCode) *packet.Connack {
	c.t.Helper()
	p.Version = c.version
	p.ProtocolName = "MQTT"
	if p.KeepAlive == 0 {
		p.KeepAlive = 30
	}
	c.send(&p)
	ack, ok := c.expect(5 * time.Second).(*packet.Connack)
	if !ok || ack.Code != code {
		c.t.Fatalf("got %+v, want CONNACK with code 0x%02x", ack, byte(code))
	}
	return ack
}

// expectClosed waits for the server to close the connection, returning the packets
// it sent before.
func (c *rawClient) expectClosed(timeout time.Duration) []packet.Packet {
	c.t.Helper()
	var got []packet.Packet
	deadline := time.Now().Add(timeout)
	for {
		p, err := c.recv(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open after %v; got %v", timeout, got)
			}
			return got
		}
		got = append(got, p)
	}
}
