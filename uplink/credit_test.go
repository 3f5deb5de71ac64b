package uplink

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// numbered returns a message with id prefix-i and application property n = i.
func numbered(prefix string, i int) *amqp.Message {
	return &amqp.Message{
		Properties:            &amqp.MessageProperties{MessageID: fmt.Sprintf("%s-%d", prefix, i)},
		ApplicationProperties: map[string]any{"n": int64(i)},
		Data:                  [][]byte{[]byte(prefix)},
	}
}

// appendStarvedFirst stores 2n messages for starved, then n pairs of one for
// starved and one for flowing, then 2n for flowing: 3n for each, numbered with the
// prefixes. The starved address's first messages are more than its lane can queue.
func appendStarvedFirst(t *testing.T, st *store.Store, starved, sPrefix, flowing, fPrefix string, n int) {
	t.Helper()
	var a, b int
	for range 2 * n {
		appendMessages(t, st, starved, "dev", numbered(sPrefix, a))
		a++
	}
	for range n {
		appendMessages(t, st, starved, "dev", numbered(sPrefix, a))
		appendMessages(t, st, flowing, "dev", numbered(fPrefix, b))
		a, b = a+1, b+1
	}
	for range 2 * n {
		appendMessages(t, st, flowing, "dev", numbered(fPrefix, b))
		b++
	}
}

// delivered returns the message-ids delivered to address, in order.
func delivered(ds []cloudtest.Delivery, address string) []string {
	var ids []string
	for _, d := range ds {
		if d.Address == address {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// checkDelivered checks that address got prefix-0 ... prefix-(n-1), each once, in
// order.
func checkDelivered(t *testing.T, ds []cloudtest.Delivery, address, prefix string, n int) {
	t.Helper()
	ids := delivered(ds, address)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("%s-%d", prefix, i))
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("%s: got deliveries %v, want %v (each once, in order)", address, ids, want)
	}
}

func allAccepted(prefix string, n int) func([]cloudtest.Delivery) bool {
	return func(ds []cloudtest.Delivery) bool {
		for i := n - 1; i >= 0; i-- {
			if !accepted(ds, fmt.Sprintf("%s-%d", prefix, i)) {
				return false
			}
		}
		return true
	}
}

// testCreditStarved checks that an address the cloud grants no link credit holds
// only its own messages: another address flows at once, and the starved one is
// delivered in order once credit arrives, well before StallTimeout.
func testCreditStarved(t *testing.T, s *cloudtest.ProtonServer) {
	const n = laneQueue
	starved, flowing := cloudtest.StarvePrefix+"credit-a", "credit-b"
	st := openStore(t, false)
	appendStarvedFirst(t, st, starved, "cs-a", flowing, "cs-b", n)
	cfg := protonConfig(s)
	cfg.StallTimeout = 30 * time.Second
	log, logs := newLogger()
	start := time.Now()
	u := startUplink(t, cfg, st, log)

	ds := s.WaitFor(t, cfg.StallTimeout/4, "all of "+flowing+" accepted", allAccepted("cs-b", 3*n))
	t.Logf("%d messages to %s accepted %v after start while %s had no credit (stall time-out %v)",
		3*n, flowing, time.Since(start).Round(time.Millisecond), starved, cfg.StallTimeout)
	checkDelivered(t, ds, flowing, "cs-b", 3*n)
	if got := delivered(ds, starved); len(got) != 0 {
		t.Errorf("%s: got deliveries %v without credit", starved, got)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 3*n }, func() string {
		return fmt.Sprintf("store: got %d messages, want the %d for %s", stored(t, st), 3*n, starved)
	})

	s.GrantCredit(t, starved)
	ds = s.WaitFor(t, 10*time.Second, "all of "+starved+" accepted", allAccepted("cs-a", 3*n))
	checkDelivered(t, ds, starved, "cs-a", 3*n)
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if s := u.Status(); s.Forwarded != 6*n || len(s.Held) != 0 || s.State != StateConnected {
		t.Errorf("status: got %+v, want %d forwarded, none held, connected", s, 6*n)
	}
	if warns := logs.lines("level=WARN"); len(warns) > 0 {
		t.Errorf("got warnings, want none:\n%s", strings.Join(warns, "\n"))
	}
}

// testCreditStalled starves an address beyond StallTimeout: it is held and tried
// again on a new link, the other address flows meanwhile, and once credit arrives
// the starved address's messages are delivered in order, each once.
func testCreditStalled(t *testing.T, s *cloudtest.ProtonServer) {
	const n = laneQueue
	starved, flowing := cloudtest.StarvePrefix+"stall-a", "stall-b"
	st := openStore(t, false)
	appendStarvedFirst(t, st, starved, "st-a", flowing, "st-b", n)
	cfg := protonConfig(s)
	cfg.StallTimeout = 2 * time.Second
	u := startUplink(t, cfg, st, nil)

	ds := s.WaitFor(t, 10*time.Second, "all of "+flowing+" accepted", allAccepted("st-b", 3*n))
	checkDelivered(t, ds, flowing, "st-b", 3*n)
	checkFor(t, 3*cfg.StallTimeout+5*time.Second, func() bool {
		attached := 0
		for _, e := range s.Events() {
			attached += btoi(e.Event == "starved" && e.Address == starved)
		}
		return attached >= 2
	}, func() string {
		return fmt.Sprintf("events %+v, status %+v; want %s attached again after a stall", s.Events(), u.Status(), starved)
	})
	// The hold stays listed, due, until a message to the address is accepted.
	if held := u.Status().Held; len(held) != 1 || held[0].Address != starved || !strings.Contains(held[0].Reason, "no link credit") {
		t.Errorf("held: got %+v, want %s for no link credit", held, starved)
	}

	s.GrantCredit(t, starved)
	ds = s.WaitFor(t, 10*time.Second, "all of "+starved+" accepted", allAccepted("st-a", 3*n))
	checkDelivered(t, ds, starved, "st-a", 3*n)
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if s := u.Status(); s.Forwarded != 6*n {
		t.Errorf("forwarded: got %d, want %d", s.Forwarded, 6*n)
	}
}

// testLinkLimit sends to more addresses than MaxLinks allows links: the addresses
// beyond it wait for the next pipeline, which starts after all links were closed,
// and every address is delivered in order, each message once.
func testLinkLimit(t *testing.T, s *cloudtest.ProtonServer) {
	const addresses, n = 5, 20
	st := openStore(t, false)
	for i := range n {
		for a := range addresses {
			appendMessages(t, st, fmt.Sprintf("limit-%d", a), "dev", numbered(fmt.Sprintf("ll-%d", a), i))
		}
	}
	cfg := protonConfig(s)
	cfg.MaxLinks = 2
	logs := new(logBuffer)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	u := startUplink(t, cfg, st, log)
	ds := s.WaitFor(t, 20*time.Second, "all accepted", func(ds []cloudtest.Delivery) bool {
		for a := range addresses {
			if !allAccepted(fmt.Sprintf("ll-%d", a), n)(ds) {
				return false
			}
		}
		return true
	})
	for a := range addresses {
		checkDelivered(t, ds, fmt.Sprintf("limit-%d", a), fmt.Sprintf("ll-%d", a), n)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if s := u.Status(); s.Forwarded != addresses*n || len(s.Held) != 0 {
		t.Errorf("status: got %+v, want %d forwarded, none held", s, addresses*n)
	}
	if warns := logs.lines("level=WARN"); len(warns) > 0 {
		t.Errorf("got warnings, want none:\n%s", strings.Join(warns, "\n"))
	}
	// Two addresses per pipeline: the links were closed twice at least.
	if n := len(logs.lines(`msg="closing all links"`)); n < (addresses-1)/cfg.MaxLinks {
		t.Errorf("links closed %d times, want %d", n, (addresses-1)/cfg.MaxLinks)
	}
}
