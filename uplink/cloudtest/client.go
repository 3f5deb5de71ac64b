package cloudtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// QueueDurability is the terminus durability the helpers attach with. RabbitMQ declares
// the queue of a "/queue/NAME" address durable unless the terminus durability is none,
// and refuses a link whose durability differs from an existing queue's with
// amqp:precondition-failed ("inequivalent arg 'durable'"). The helpers therefore expect
// durable queues, as the uplink declares them.
const QueueDurability = amqp.DurabilityConfiguration

// TLSConfig returns a client TLS configuration that trusts the broker's CA and checks
// its name (127.0.0.1). It presents no client certificate.
func (b *Broker) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(b.CAFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (b *Broker) connOptions(user, password string) *amqp.ConnOptions {
	return &amqp.ConnOptions{
		TLSConfig:   b.TLSConfig(),
		SASLType:    amqp.SASLTypePlain(user, password),
		ContainerID: "cloudtest",
	}
}

// WritePasswordFile writes b.Password, with a trailing newline, to a new file in a
// temporary directory and returns its path, for components that read their password
// from a file.
func (b *Broker) WritePasswordFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	return path
}

// Dial opens a connection to the broker as b.User with SASL PLAIN over TLS. The
// connection is closed when the test ends.
func (b *Broker) Dial(t testing.TB) *amqp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, b.URL, b.connOptions(b.User, b.Password))
	if err != nil {
		t.Fatalf("cloudtest: dial %s: %v", b.URL, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Send sends msgs to address (for example "/queue/NAME", durable) as b.User, one after another,
// and fails the test unless each is accepted.
func (b *Broker) Send(t testing.TB, address string, msgs ...*amqp.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := b.Dial(t)
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatalf("cloudtest: session: %v", err)
	}
	snd, err := sess.NewSender(ctx, address, &amqp.SenderOptions{TargetDurability: QueueDurability})
	if err != nil {
		t.Fatalf("cloudtest: attach sender to %s: %v", address, err)
	}
	for i, m := range msgs {
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatalf("cloudtest: send message %d to %s: %v", i, address, err)
		}
	}
}

// Receive reads n messages from address (for example "/queue/NAME", durable) as b.User,
// accepting each, and returns them in arrival order. It fails the test if fewer than n
// arrive within timeout. Messages beyond n that the broker had already sent are released
// back to it when the link closes.
func (b *Broker) Receive(t testing.TB, address string, n int, timeout time.Duration) []*amqp.Message {
	t.Helper()
	got, err := b.receive(t, address, n, timeout, 0)
	if err != nil {
		t.Fatalf("cloudtest: receive from %s: got %d of %d messages within %v: %v", address, len(got), n, timeout, err)
	}
	return got
}

// Drain reads and accepts messages from address until none arrives for quiet, and
// returns them: what was left in the queue, up to 100,000. It never fails on an empty
// queue.
func (b *Broker) Drain(t testing.TB, address string, quiet time.Duration) []*amqp.Message {
	t.Helper()
	got, err := b.receive(t, address, -1, 0, quiet)
	if err != nil {
		t.Fatalf("cloudtest: drain %s: %v", address, err)
	}
	return got
}

// ExpectEmpty fails the test if a message arrives on address within window: the check
// that nothing was delivered twice. Such a message is accepted (removed).
func (b *Broker) ExpectEmpty(t testing.TB, address string, window time.Duration) {
	t.Helper()
	if extra := b.Drain(t, address, window); len(extra) > 0 {
		t.Errorf("cloudtest: %s: got %d unexpected messages, want none; first: %s", address, len(extra), describe(extra[0]))
	}
}

// drainCredit is the credit Drain grants: the most messages it can read.
const drainCredit = 100000

// receive reads up to n messages (n < 0: any number) until the total timeout (0: none)
// or, when quiet > 0, until no message arrives for quiet.
func (b *Broker) receive(t testing.TB, address string, n int, timeout, quiet time.Duration) ([]*amqp.Message, error) {
	t.Helper()
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn := b.Dial(t)
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return nil, err
	}
	// All credit is issued at once, in one flow: RabbitMQ 3.10 sometimes ignores a
	// flow that adds credit while it is delivering, and the consumer stalls for good.
	// The credit never exceeds n, so no message beyond n is taken from the queue.
	credit := uint32(drainCredit)
	if n >= 0 {
		credit = uint32(n)
	}
	rcv, err := sess.NewReceiver(ctx, address, &amqp.ReceiverOptions{Credit: -1, SourceDurability: QueueDurability})
	if err != nil {
		return nil, err
	}
	if credit > 0 {
		if err := rcv.IssueCredit(credit); err != nil {
			return nil, err
		}
	}
	// End the session before the connection closes: RabbitMQ 3.10 drops dispositions
	// still queued for a session when the connection closes, and so redelivers messages
	// that were accepted; it handles an end after them. (It never answers the detach of
	// a receiving link, so the link is not closed on its own.)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sess.Close(cctx)
	}()
	var got []*amqp.Message
	for n < 0 || len(got) < n {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if quiet > 0 {
			rctx, cancel = context.WithTimeout(ctx, quiet)
		}
		m, err := rcv.Receive(rctx, nil)
		cancel()
		if quiet > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			return got, err
		}
		got = append(got, m)
	}
	return got, nil
}

func describe(m *amqp.Message) string {
	if m.Properties != nil && m.Properties.MessageID != nil {
		return fmt.Sprintf("message-id %v", m.Properties.MessageID)
	}
	return fmt.Sprintf("body %q", m.GetData())
}
