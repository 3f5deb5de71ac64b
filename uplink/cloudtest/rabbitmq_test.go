package cloudtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// TestRabbitMQ starts one node and checks what the uplink's tests rely on: PLAIN and
// EXTERNAL logins, refusals, the queue limit, and data kept across Stop and Start.
func TestRabbitMQ(t *testing.T) {
	b := StartRabbitMQ(t, WithQueueLimit("limited", 1))

	t.Run("send and receive", func(t *testing.T) {
		b.Send(t, "/queue/roundtrip", amqp.NewMessage([]byte("one")), amqp.NewMessage([]byte("two")))
		got := b.Receive(t, "/queue/roundtrip", 2, 10*time.Second)
		for i, want := range []string{"one", "two"} {
			if string(got[i].GetData()) != want {
				t.Errorf("message %d: got %q, want %q", i, got[i].GetData(), want)
			}
		}
		b.ExpectEmpty(t, "/queue/roundtrip", 200*time.Millisecond)
	})

	t.Run("wrong password", func(t *testing.T) {
		_, err := dial(b, b.connOptions(b.User, "wrong"))
		if err == nil || !strings.Contains(err.Error(), "auth") {
			t.Errorf("got err %v, want a SASL authentication failure", err)
		}
	})

	t.Run("external", func(t *testing.T) {
		cert, err := tls.LoadX509KeyPair(b.ClientCert, b.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg := b.TLSConfig()
		cfg.Certificates = []tls.Certificate{cert}
		conn, err := dial(b, &amqp.ConnOptions{TLSConfig: cfg, SASLType: amqp.SASLTypeExternal("")})
		if err != nil {
			t.Fatalf("SASL EXTERNAL as %q: %v", b.ClientName, err)
		}
		conn.Close()
	})

	t.Run("restricted user may not write", func(t *testing.T) {
		conn, err := dial(b, b.connOptions(b.RestrictedUser, b.RestrictedPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sess, err := conn.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := sess.NewSender(ctx, "/queue/forbidden", nil)
		if err == nil {
			err = snd.Send(ctx, amqp.NewMessage([]byte("x")), nil)
		}
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Condition != amqp.ErrCondUnauthorizedAccess {
			t.Errorf("got err %v, want %s", err, amqp.ErrCondUnauthorizedAccess)
		}
	})

	t.Run("queue limit closes the connection", func(t *testing.T) {
		conn := b.Dial(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sess, err := conn.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := sess.NewSender(ctx, "/queue/limited", &amqp.SenderOptions{TargetDurability: QueueDurability})
		if err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, amqp.NewMessage([]byte("fits")), nil); err != nil {
			t.Fatalf("first message: %v", err)
		}
		// See WithQueueLimit: 3.10 drops the connection instead of rejecting.
		err = snd.Send(ctx, amqp.NewMessage([]byte("overflows")), nil)
		var amqpErr *amqp.Error
		if errors.As(err, &amqpErr) && amqpErr.Condition == "" {
			t.Fatalf("second message: got err %v, want a connection error", err)
		}
		if err == nil {
			t.Fatal("second message: got nil error, want a connection error")
		}
		t.Logf("overflow: %v", err)
		b.Receive(t, "/queue/limited", 1, 5*time.Second)
	})

	t.Run("stop keeps data", func(t *testing.T) {
		b.Send(t, "/queue/durable", &amqp.Message{Header: &amqp.MessageHeader{Durable: true}, Data: [][]byte{[]byte("kept")}})
		b.Stop()
		if _, err := dial(b, b.connOptions(b.User, b.Password)); err == nil {
			t.Fatal("dial succeeded while the node was stopped")
		}
		b.Start()
		got := b.Receive(t, "/queue/durable", 1, 10*time.Second)
		if string(got[0].GetData()) != "kept" {
			t.Errorf("got %q, want %q", got[0].GetData(), "kept")
		}
	})

	// Last: Kill and Close must leave no process behind.
	t.Run("kill and close", func(t *testing.T) {
		pgid, epmd := b.node.Process.Pid, b.epmd.Process.Pid
		b.Kill()
		if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d after Kill: got %v, want ESRCH", pgid, err)
		}
		b.Close()
		if err := syscall.Kill(epmd, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("epmd %d after Close: got %v, want ESRCH", epmd, err)
		}
		b.Close() // idempotent
	})
}

func TestPasswordHash(t *testing.T) {
	h := passwordHash("secret")
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil || len(raw) != 36 {
		t.Fatalf("got %q (%v), want base64 of 36 bytes", h, err)
	}
	sum := sha256.Sum256(append(append([]byte(nil), raw[:4]...), "secret"...))
	if !bytes.Equal(raw[4:], sum[:]) {
		t.Errorf("got digest %x, want sha256(salt+password) %x", raw[4:], sum)
	}
	if passwordHash("secret") == h {
		t.Error("two hashes of the same password are equal; want distinct salts")
	}
}

func dial(b *Broker, opts *amqp.ConnOptions) (*amqp.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return amqp.Dial(ctx, b.URL, opts)
}
