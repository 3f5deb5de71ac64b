package uplink

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// testRetryWithoutBarrier: a new pass (here for a message released three times on
// one address) does not wait for a slow outcome on another address (accepted 3 s
// late): a third address, appended to at a steady pace meanwhile, keeps flowing.
// Nothing whose outcome is pending is sent again: the slow address's messages, in
// flight behind the slow one while the passes re-read the store, arrive once each.
func testRetryWithoutBarrier(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "rb-slow", "dev", asked("rb-slow-0", cloudtest.OutcomeDelayAccept, 1))
	for i := 1; i < 5; i++ {
		appendMessages(t, st, "rb-slow", "dev", asked(fmt.Sprintf("rb-slow-%d", i), cloudtest.OutcomeAccept, 1))
	}
	cfg := protonConfig(s)
	cfg.StallTimeout = 30 * time.Second
	u := startUplink(t, cfg, st, nil)
	start := time.Now()
	s.WaitFor(t, 5*time.Second, "rb-slow-0 sent", func(ds []cloudtest.Delivery) bool { return len(byID(ds)["rb-slow-0"]) == 1 })
	appendMessages(t, st, "rb-rel", "dev", asked("rb-rel-0", cloudtest.OutcomeRelease, 3))

	// 40 messages, one every 50 ms: all of them while rb-slow-0 awaits its outcome.
	const n, pace = 40, 50 * time.Millisecond
	appended := map[string]time.Time{}
	var worst time.Duration
	var worstID string
	late := func(id string, d time.Duration) {
		if d > worst {
			worst, worstID = d, id
		}
	}
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := range n {
		m := numbered("rb-flow", i)
		appended[m.Properties.MessageID.(string)] = time.Now()
		appendMessages(t, st, "rb-flow", "dev", m)
		<-tick.C
		for _, d := range s.Deliveries() {
			if at, ok := appended[d.ID]; ok {
				late(d.ID, time.Since(at))
				delete(appended, d.ID)
			}
		}
	}
	if busy := time.Since(start); busy > 3*time.Second {
		t.Logf("appending took %v, longer than the slow outcome's delay: the test proves less", busy)
	}
	checkFor(t, 5*time.Second, func() bool {
		for _, d := range s.Deliveries() {
			if at, ok := appended[d.ID]; ok {
				late(d.ID, time.Since(at)) // within a poll of its arrival
				delete(appended, d.ID)
			}
		}
		return len(appended) == 0
	}, func() string { return fmt.Sprintf("rb-flow: %d messages not delivered", len(appended)) })
	ds := s.WaitFor(t, 10*time.Second, "all accepted", func(ds []cloudtest.Delivery) bool {
		return accepted(ds, "rb-rel-0") && allAccepted("rb-flow", n)(ds) && allAccepted("rb-slow", 5)(withDelayed(ds))
	})
	t.Logf("worst time from append to delivery on rb-flow: %v (%s)", worst.Round(time.Millisecond), worstID)
	if worst > time.Second {
		t.Errorf("rb-flow: %s took %v from append to delivery, want under 1s (a slow outcome on rb-slow held it up)", worstID, worst)
	}
	checkDelivered(t, ds, "rb-flow", "rb-flow", n)
	checkDelivered(t, ds, "rb-slow", "rb-slow", 5) // each once: none sent again while pending
	if got := len(byID(ds)["rb-rel-0"]); got != 4 {
		t.Errorf("rb-rel-0: got %d deliveries, want 4 (3 releases, then accepted)", got)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if s := u.Status(); s.Forwarded != 5+1+n || s.Released != 3 {
		t.Errorf("status: got %+v, want %d forwarded, 3 released", s, 5+1+n)
	}
}

// testUndeliverableWaitsForOutcomes: the move to another connection for a message
// the cloud called undeliverable here waits for an outcome still pending on another
// address, so that the message is not sent again on the new connection.
func testUndeliverableWaitsForOutcomes(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "uw-slow", "dev", asked("uw-slow-0", cloudtest.OutcomeDelayAccept, 1))
	cfg := protonConfig(s)
	cfg.StallTimeout = 30 * time.Second
	startUplink(t, cfg, st, nil)
	s.WaitFor(t, 5*time.Second, "uw-slow-0 sent", func(ds []cloudtest.Delivery) bool { return len(byID(ds)["uw-slow-0"]) == 1 })
	appendMessages(t, st, "uw-here", "dev", asked("uw-1", cloudtest.OutcomeUndeliverable, 1))
	ds := s.WaitFor(t, 15*time.Second, "uw-1 accepted", func(ds []cloudtest.Delivery) bool { return accepted(ds, "uw-1") })
	if got := byID(ds)["uw-1"]; len(got) != 2 || got[0].Conn == got[1].Conn {
		t.Errorf("uw-1: got deliveries %+v, want two on different connections", got)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if got := byID(s.Deliveries())["uw-slow-0"]; len(got) != 1 {
		t.Errorf("uw-slow-0: got deliveries %+v, want one (its outcome was pending, not lost)", got)
	}
}

// withDelayed returns ds with delay-accept outcomes counted as accepted: the
// server records the answer it chose, and accepts those 3 s later.
func withDelayed(ds []cloudtest.Delivery) []cloudtest.Delivery {
	out := make([]cloudtest.Delivery, len(ds))
	for i, d := range ds {
		if d.Outcome == cloudtest.OutcomeDelayAccept {
			d.Outcome = cloudtest.OutcomeAccept
		}
		out[i] = d
	}
	return out
}

// copyCounter counts, per address, the messages the uplink's reads copied out of
// the store.
type copyCounter struct {
	*store.Store
	mu     sync.Mutex
	copied map[string]int
}

func (c *copyCounter) ReadNextFunc(cur *store.Cursor, max int, skip func(uint64, []byte) bool) ([]store.Message, error) {
	msgs, err := c.Store.ReadNextFunc(cur, max, skip)
	c.mu.Lock()
	for _, m := range msgs {
		c.copied[m.Address]++
	}
	c.mu.Unlock()
	return msgs, err
}

func (c *copyCounter) count(address string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.copied[address]
}

// testHeldNotReread: the passes that read the store again (here for two held
// addresses, due often) do not copy all the messages of a held address out of the
// store only to drop them: at most a batch of it, when the pass tries it again.
func testHeldNotReread(t *testing.T, s *cloudtest.ProtonServer) {
	const n = 2000
	held, other := cloudtest.RefusePrefix+"nr-held", cloudtest.RefusePrefix+"nr-other"
	st := openStore(t, false)
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = encode(t, numbered("nr-held", i))
	}
	appendPayloads(t, st, held, "dev", payloads...)
	appendMessages(t, st, other, "dev", numbered("nr-other", 0))
	appendMessages(t, st, "nr-flow", "dev", numbered("nr-flow", 0))
	src := &copyCounter{Store: st, copied: map[string]int{}}
	cfg := protonConfig(s)
	cfg.BackoffMin, cfg.BackoffMax = 50*time.Millisecond, 100*time.Millisecond
	startUplink(t, cfg, src, nil)
	s.WaitFor(t, 5*time.Second, "nr-flow accepted", allAccepted("nr-flow", 1))
	refusals := func(address string) (r int) {
		for _, e := range s.Events() {
			r += btoi(e.Event == "refused" && e.Address == address)
		}
		return r
	}
	checkFor(t, 10*time.Second, func() bool { return refusals(other) >= 10 }, func() string {
		return fmt.Sprintf("%s refused %d times, want 10", other, refusals(other))
	})
	copied := src.count(held)
	// Every pass starts when a hold is due (each try of an address ends in a
	// refusal); one may be under way. A pass copies at most a batch of the held
	// address (when it tries it again); reading it all only to drop it would copy
	// n per pass.
	passes := refusals(held) + refusals(other) + 1
	t.Logf("%d passes; %d messages of %s copied out of the store (%d stored)", passes, copied, held, n)
	if bound := passes * readBatch; copied > bound {
		t.Errorf("%s: %d messages copied out of the store in %d passes, want at most %d (a batch each)", held, copied, passes, bound)
	}
}

// testHoldAcrossReconnect: a hold made on one connection still ends on the next one
// to the same endpoint: the held address is tried again there.
func testHoldAcrossReconnect(t *testing.T, s *cloudtest.ProtonServer) {
	held := cloudtest.RefusePrefix + "hr-held"
	st := openStore(t, false)
	appendMessages(t, st, held, "dev", numbered("hr-held", 0))
	cfg := protonConfig(s)
	cfg.BackoffMin, cfg.BackoffMax = 50*time.Millisecond, 4*time.Second
	u := startUplink(t, cfg, st, nil)
	count := func(event, address string) (r int) {
		for _, e := range s.Events() {
			r += btoi(e.Event == event && (address == "" || e.Address == address))
		}
		return r
	}
	// Wait for a hold of the address that lasts longer than it takes to connect
	// again (after 5 refusals, 0.8 s or more).
	checkFor(t, 10*time.Second, func() bool {
		h := u.Status().Held
		return len(h) == 1 && time.Until(h[0].Until) > 500*time.Millisecond
	}, func() string {
		return fmt.Sprintf("%s refused %d times, held %+v; want a hold of 0.5 s or more", held, count("refused", held), u.Status().Held)
	})
	conns := count("connection", "")
	appendMessages(t, st, "hr-drop", "dev", asked("hr-drop", cloudtest.OutcomeDropConnection, 1))
	s.WaitFor(t, 10*time.Second, "hr-drop accepted after a reconnect", func(ds []cloudtest.Delivery) bool { return accepted(ds, "hr-drop") })
	if n := count("connection", ""); n <= conns {
		t.Fatalf("got %d connections, want more than %d", n, conns)
	}
	refused := count("refused", held)
	checkFor(t, 10*time.Second, func() bool { return count("refused", held) > refused }, func() string {
		return fmt.Sprintf("%s not tried again after the reconnect", held)
	})
}
