package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// One receiver per device: a second command receiver for the same device takes over,
// on another connection and on the same one; the old link is detached with
// amqp:link:stolen and its unsettled commands are sent again, in order, to the new one.
func TestCommandReceiverTakeover(t *testing.T) {
	addr, srv, st := commandServer(t)
	const dev = "sensor-7"
	for i := range 5 {
		queueCommand(t, st, dev, fmt.Sprintf("c%d", i))
	}
	_, r1, err := commandReceiver(t, addr, amqp.SASLTypeAnonymous(), "command/"+dev, &amqp.ReceiverOptions{Credit: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The first takes three and accepts the first only.
	var got []*amqp.Message
	for range 3 {
		got = append(got, receive(t, r1))
	}
	if b := bodies(got); b != "[c0 c1 c2]" {
		t.Fatalf("first receiver got %v", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r1.AcceptMessage(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	for srv.CommandStats().Accepted != 1 {
		if ctx.Err() != nil {
			t.Fatal("c0's acceptance not applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c2, r2, err := commandReceiver(t, addr, amqp.SASLTypeAnonymous(), "command/"+dev, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	// The first link is detached with amqp:link:stolen (after what it had received).
	stolen(t, ctx, r1)
	// The new one gets the commands the first left unsettled, then the rest, in order.
	got = nil
	for range 4 {
		got = append(got, receive(t, r2))
	}
	if b := bodies(got); b != "[c1 c2 c3 c4]" {
		t.Fatalf("second receiver got %v, want c1..c4 in order", b)
	}

	// A third on the second's connection takes over from it in turn.
	s, err := c2.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := s.NewReceiver(ctx, "command/"+dev, &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	stolen(t, ctx, r2)
	got = nil
	for range 4 {
		m := receive(t, r3)
		got = append(got, m)
		if err := r3.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if b := bodies(got); b != "[c1 c2 c3 c4]" {
		t.Fatalf("third receiver got %v, want c1..c4 in order", b)
	}
}

// stolen reads r until its link ends, and fails unless it ended with amqp:link:stolen.
func stolen(t *testing.T, ctx context.Context, r *amqp.Receiver) {
	t.Helper()
	for {
		_, err := r.Receive(ctx, nil)
		if err == nil {
			continue // received before the takeover
		}
		var le *amqp.LinkError
		if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "amqp:link:stolen" {
			t.Fatalf("receiver after the takeover: %v, want amqp:link:stolen", err)
		}
		return
	}
}

func bodies(ms []*amqp.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.GetData()))
	}
	return fmt.Sprint(out)
}
