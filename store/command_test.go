package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func appendCmd(t *testing.T, s *Store, dev, key, payload string) uint64 {
	t.Helper()
	c := &Command{Device: dev, Key: key, Address: "command/" + dev, Payload: []byte(payload)}
	if err := s.AppendCommand(context.Background(), c); err != nil {
		t.Fatalf("AppendCommand %s %s: %v", dev, payload, err)
	}
	return c.Seq
}

func payloads(cs []Command) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Payload))
	}
	return out
}

func TestCommandsFIFOPerDeviceAndSurviveReopen(t *testing.T) {
	s, path := openTest(t, testOptions())
	var wg sync.WaitGroup
	for d := 0; d < 4; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				c := &Command{Device: fmt.Sprint("dev", d), Payload: []byte(fmt.Sprint(i))}
				if err := s.AppendCommand(context.Background(), c); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// Interleaved with the upward path in the same commits.
	if err := s.Append(context.Background(), &Message{Address: "up", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path, testOptions())
	for d := 0; d < 4; d++ {
		cs, err := s.ReadCommands(fmt.Sprint("dev", d), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 50 {
			t.Fatalf("dev%d: %d commands, want 50", d, len(cs))
		}
		for i, c := range cs {
			if string(c.Payload) != fmt.Sprint(i) || c.Device != fmt.Sprint("dev", d) {
				t.Fatalf("dev%d: command %d is %q", d, i, c.Payload)
			}
		}
	}
	if st := s.CommandStats(); st.Messages != 200 || st.Devices != 4 {
		t.Fatalf("stats after reopen: %+v", st)
	}
	if st := s.Stats(); st.Messages != 1 {
		t.Fatalf("upward messages: %d, want 1", st.Messages)
	}
	// Paging with after.
	cs, _ := s.ReadCommands("dev0", 0, 10)
	more, _ := s.ReadCommands("dev0", cs[9].Seq, 10)
	if string(more[0].Payload) != "10" {
		t.Fatalf("after %d: got %q", cs[9].Seq, more[0].Payload)
	}
}

func TestCommandOutcomesAndTotals(t *testing.T) {
	s, path := openTest(t, testOptions())
	a := appendCmd(t, s, "d", "", "a")
	b := appendCmd(t, s, "d", "", "b")
	c := appendCmd(t, s, "d", "", "c")
	w := s.WatchCommands("d")
	defer w.Stop()
	room := s.WatchCommandRoom()
	defer room.Stop()
	done := make(chan error, 3)
	s.DeleteCommand("d", a, func(err error) { done <- err })
	s.DeadLetterCommand("d", b, "amqp:rejected-by-device: bad", func(err error) { done <- err })
	s.RewriteCommand("d", c, []byte("c2"), func(err error) { done <- err })
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal after a rewrite")
	}
	select {
	case <-room.C:
	case <-time.After(5 * time.Second):
		t.Fatal("no room signal after a delete")
	}
	cs, _ := s.ReadCommands("d", 0, 10)
	if got := payloads(cs); len(got) != 1 || got[0] != "c2" || cs[0].Seq != c {
		t.Fatalf("queue after outcomes: %v", got)
	}
	dl, _ := s.CommandDeadLetters("d", 10)
	if len(dl) != 1 || dl[0].Reason != "amqp:rejected-by-device: bad" || string(dl[0].Payload) != "b" || dl[0].Seq != b {
		t.Fatalf("dead letters: %+v", dl)
	}
	s.DeadLetterCommand("d", 999, "x", func(err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrNotFound) {
		t.Fatalf("dead letter of a missing seq: %v", err)
	}
	s = reopen(t, s, path, testOptions())
	st := s.CommandStats()
	if st.Delivered != 1 || st.DeadLettered != 1 || st.DeadLetters != 1 || st.Messages != 1 || st.Bytes != 2 {
		t.Fatalf("stats after reopen: %+v", st)
	}
	qs, _ := s.CommandQueues()
	if len(qs) != 1 || qs[0].Messages != 1 || qs[0].DeadLetters != 1 || qs[0].Oldest.IsZero() {
		t.Fatalf("queues: %+v", qs)
	}
	if n, err := s.PurgeCommands(context.Background(), "d", true); err != nil || n != 1 {
		t.Fatalf("purge dead: %d %v", n, err)
	}
	if n, err := s.PurgeCommands(context.Background(), "", false); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if st := s.CommandStats(); st.Messages != 0 || st.DeadLetters != 0 || st.Devices != 0 {
		t.Fatalf("stats after purge: %+v", st)
	}
}

func TestCommandBudgetsAndSupersede(t *testing.T) {
	opts := testOptions()
	opts.Commands = CommandOptions{MaxPerDevice: 3, MaxMessages: 5}
	s, _ := openTest(t, opts)
	for i := 0; i < 3; i++ {
		appendCmd(t, s, "a", "", fmt.Sprint(i))
	}
	err := s.AppendCommand(context.Background(), &Command{Device: "a", Payload: []byte("x")})
	if !errors.Is(err, ErrFull) || !isFull(err) {
		t.Fatalf("4th command of a: %v, want ErrFull", err)
	}
	appendCmd(t, s, "b", "cfg", "v1")
	appendCmd(t, s, "b", "", "other")
	if err := s.AppendCommand(context.Background(), &Command{Device: "c", Payload: []byte("x")}); !errors.Is(err, ErrFull) {
		t.Fatalf("6th command in total: %v, want ErrFull", err)
	}
	// Supersede frees the older one's place first.
	appendCmd(t, s, "b", "cfg", "v2")
	cs, _ := s.ReadCommands("b", 0, 10)
	if got := fmt.Sprint(payloads(cs)); got != "[other v2]" {
		t.Fatalf("b after supersede: %s", got)
	}
	st := s.CommandStats()
	if st.Superseded != 1 || st.Refused != 2 || st.Messages != 5 || !s.CommandsFull() {
		t.Fatalf("stats: %+v", st)
	}
}

// TestCommandRun: once an append of a run is refused for lack of room, the later
// appends of that run for the device are refused even after room returns, so the
// producer never commits a command behind one it hands back; a new run, another
// device and run 0 are not held.
func TestCommandRun(t *testing.T) {
	opts := testOptions()
	opts.Commands = CommandOptions{MaxPerDevice: 2}
	s, _ := openTest(t, opts)
	ctx := context.Background()
	add := func(dev, body string, run uint64) error {
		return s.AppendCommand(ctx, &Command{Device: dev, Payload: []byte(body), Run: run})
	}
	for i, body := range []string{"1", "2"} {
		if err := add("a", body, 7); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := add("a", "3", 7); !isFull(err) {
		t.Fatalf("3rd of a: %v, want ErrFull", err)
	}
	if err := add("b", "b1", 7); err != nil {
		t.Fatalf("another device in the same run: %v", err)
	}
	cs, _ := s.ReadCommands("a", 0, 10)
	deleted := make(chan error, 1)
	s.DeleteCommand("a", cs[0].Seq, func(err error) { deleted <- err })
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	// Room again, but "4" of run 7 would overtake "3", which the producer gives back.
	if err := add("a", "4", 7); !isFull(err) || !strings.Contains(err.Error(), "same run") {
		t.Fatalf("a later command of the refused run: %v, want ErrFull naming the run", err)
	}
	if err := add("a", "3", 8); err != nil {
		t.Fatalf("the refused command in a new run: %v", err)
	}
	cs, _ = s.ReadCommands("a", 0, 10)
	if got := fmt.Sprint(payloads(cs)); got != "[2 3]" {
		t.Fatalf("a's queue: %s, want [2 3]", got)
	}
	if st := s.CommandStats(); st.Refused != 2 {
		t.Fatalf("refused %d, want 2", st.Refused)
	}
}

func isFull(err error) bool {
	var fe interface{ Full() bool }
	return errors.As(err, &fe) && fe.Full()
}

func TestCommandExpiry(t *testing.T) {
	t0 := time.Now()
	clock := &fakeClock{now: t0}
	opts := testOptions()
	opts.Clock = clock
	opts.Commands = CommandOptions{DefaultTTL: time.Minute, MaxTTL: time.Hour}
	s, path := openTest(t, opts)
	ctx := context.Background()
	// Default TTL, an explicit short one, and one capped at MaxTTL.
	for _, c := range []*Command{
		{Device: "d", Payload: []byte("default"), Received: t0},
		{Device: "d", Payload: []byte("short"), Received: t0, Expires: t0.Add(time.Second)},
		{Device: "d", Payload: []byte("capped"), Received: t0, Expires: t0.Add(100 * time.Hour)},
	} {
		if err := s.AppendCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	cs, _ := s.ReadCommands("d", 0, 10)
	if len(cs) != 3 || !cs[2].Expires.Equal(time.Unix(0, t0.Add(time.Hour).UnixNano())) {
		t.Fatalf("before expiry: %v (capped expires %v)", payloads(cs), cs[2].Expires)
	}
	clock.add(2 * time.Second)
	cs, _ = s.ReadCommands("d", 0, 10)
	if got := fmt.Sprint(payloads(cs)); got != "[default capped]" {
		t.Fatalf("after 2 s: %s", got)
	}
	clock.add(2 * time.Minute)
	checkFor(t, 5*time.Second, func() bool { return s.CommandStats().Expired == 2 }, "expired: %+v", s.CommandStats())
	s = reopen(t, s, path, opts)
	if st := s.CommandStats(); st.Expired != 2 || st.Messages != 1 {
		t.Fatalf("after reopen: %+v", st)
	}
}
