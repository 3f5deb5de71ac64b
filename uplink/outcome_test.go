package uplink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestProton checks every outcome path (AMQP 1.0 §3.4) and per-address holding
// against a Qpid Proton server that answers as each message asks; see
// cloudtest.StartProton. One server serves all subtests; message-ids are unique.
func TestProton(t *testing.T) {
	s := cloudtest.StartProton(t)
	t.Run("outcomes", func(t *testing.T) { testOutcomes(t, s) })
	t.Run("undeliverable here", func(t *testing.T) { testUndeliverableHere(t, s) })
	t.Run("held addresses", func(t *testing.T) { testHeldAddresses(t, s) })
	t.Run("link and connection drops", func(t *testing.T) { testDrops(t, s) })
	t.Run("credit starved", func(t *testing.T) { testCreditStarved(t, s) })
	t.Run("credit stalled", func(t *testing.T) { testCreditStalled(t, s) })
	t.Run("link limit", func(t *testing.T) { testLinkLimit(t, s) })
	t.Run("modified survives a restart", func(t *testing.T) { testModifiedRestart(t, s) })
	t.Run("hold due while reader waits", func(t *testing.T) { testMissedHoldDue(t, s) })
	t.Run("slow credit passed by", func(t *testing.T) { testSlowCredit(t, s) })
	t.Run("retry without barrier", func(t *testing.T) { testRetryWithoutBarrier(t, s) })
	t.Run("undeliverable waits for outcomes", func(t *testing.T) { testUndeliverableWaitsForOutcomes(t, s) })
	t.Run("held not read again", func(t *testing.T) { testHeldNotReread(t, s) })
	t.Run("hold across a reconnect", func(t *testing.T) { testHoldAcrossReconnect(t, s) })
	t.Run("max-message-size", func(t *testing.T) { testMaxMessageSize(t, s) })
}

// protonConfig returns a configuration for s: TLS against its CA, SASL ANONYMOUS.
func protonConfig(s *cloudtest.ProtonServer) Config {
	return Config{
		URL:         s.URL,
		CAFile:      s.CAFile,
		ContainerID: "gw-test",
		BackoffMin:  50 * time.Millisecond,
		BackoffMax:  300 * time.Millisecond,
		RetryDelay:  100 * time.Millisecond,
		DialTimeout: 5 * time.Second,
	}
}

// asked returns a message with id that asks the server for outcome, times times.
func asked(id any, outcome string, times int) *amqp.Message {
	m := &amqp.Message{
		ApplicationProperties: map[string]any{cloudtest.PropOutcome: outcome, cloudtest.PropOutcomeTimes: int64(times)},
		Data:                  [][]byte{[]byte(outcome)},
	}
	if id != nil {
		m.Properties = &amqp.MessageProperties{MessageID: id}
	}
	return m
}

// byID groups deliveries by message-id.
func byID(ds []cloudtest.Delivery) map[string][]cloudtest.Delivery {
	m := map[string][]cloudtest.Delivery{}
	for _, d := range ds {
		m[d.ID] = append(m[d.ID], d)
	}
	return m
}

func accepted(ds []cloudtest.Delivery, id string) bool {
	for _, d := range ds {
		if d.ID == id && d.Outcome == cloudtest.OutcomeAccept {
			return true
		}
	}
	return false
}

func testOutcomes(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "outcomes", "dev",
		asked("o-acc", cloudtest.OutcomeAccept, 1),
		asked("o-rel", cloudtest.OutcomeRelease, 2),
		asked("o-mod", cloudtest.OutcomeModifiedFailed, 2),
		asked("o-rej", cloudtest.OutcomeReject, 1),
		asked(nil, cloudtest.OutcomeRelease, 1), // gets a message-id: seq 5
	)
	u := startUplink(t, protonConfig(s), st, nil)
	noID := "shadowgw:gw-test:5"
	ds := s.WaitFor(t, 20*time.Second, "accepted outcomes", func(ds []cloudtest.Delivery) bool {
		return accepted(ds, "o-acc") && accepted(ds, "o-rel") && accepted(ds, "o-mod") && accepted(ds, noID)
	})
	ids := byID(ds)
	tests := []struct {
		id         string
		wantCounts []int // header delivery-count of each delivery
	}{
		{"o-acc", []int{0}},
		{"o-rel", []int{0, 0, 0}}, // released: not a failed attempt
		{"o-mod", []int{0, 1, 2}}, // modified with delivery-failed: counted
		{"o-rej", []int{0}},
		{noID, []int{0, 0}}, // the same derived message-id at the retry
	}
	for _, tt := range tests {
		var got []int
		for _, d := range ids[tt.id] {
			got = append(got, d.DeliveryCount)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.wantCounts) {
			t.Errorf("%s: got delivery-counts %v, want %v", tt.id, got, tt.wantCounts)
		}
	}
	// §3.4.5: the annotations of a modified outcome are merged into the message's,
	// replacing an older value under the same key.
	var attempts []string
	for _, d := range ids["o-mod"] {
		attempts = append(attempts, d.Annotations["x-opt-cloud-attempt"])
		if d.Annotations[SourceAnnotation] != "dev" {
			t.Errorf("o-mod delivery %d: annotations %v lost the source", d.N, d.Annotations)
		}
	}
	if fmt.Sprint(attempts) != "[ 1 2]" {
		t.Errorf("o-mod: got x-opt-cloud-attempt %q in the deliveries, want none, 1, 2", attempts)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	dls, err := st.DeadLetters()
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Seq != 4 || !strings.Contains(dls[0].Reason, "amqp:precondition-failed: rejected on request") {
		t.Errorf("dead letters: got %+v, want seq 4 rejected with amqp:precondition-failed", dls)
	}
	if st := u.Status(); st.Forwarded != 4 || st.DeadLettered != 1 || st.Released != 5 || len(st.Held) != 0 {
		t.Errorf("status: got %+v, want 4 forwarded, 1 dead-lettered, 5 released, none held", st)
	}
}

// testUndeliverableHere checks modified with undeliverable-here: the message is not
// sent again on that connection, the others go on, and a new connection takes it.
func testUndeliverableHere(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "undeliverable", "dev",
		asked("u-1", cloudtest.OutcomeUndeliverable, 1),
		asked("u-2", cloudtest.OutcomeAccept, 1),
	)
	log, logs := newLogger()
	startUplink(t, protonConfig(s), st, log)
	ds := s.WaitFor(t, 20*time.Second, "u-1 accepted", func(ds []cloudtest.Delivery) bool { return accepted(ds, "u-1") })
	u1 := byID(ds)["u-1"]
	if len(u1) != 2 || u1[0].Conn == u1[1].Conn {
		t.Errorf("u-1: got deliveries %+v, want two on different connections", u1)
	}
	if u1[1].DeliveryCount != 1 {
		t.Errorf("u-1: got delivery-count %d at the retry, want 1 (delivery-failed)", u1[1].DeliveryCount)
	}
	if u2 := byID(ds)["u-2"]; len(u2) != 1 || u2[0].Conn != u1[0].Conn {
		t.Errorf("u-2: got %+v, want one delivery on the first connection", u2)
	}
	if n := len(logs.lines("msg=reconnecting", "undeliverable here")); n != 1 {
		t.Errorf("got %d reconnect lines, want 1:\n%s", n, logs)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
}

// testHeldAddresses checks that addresses the cloud refuses (not-found at attach, or
// the session ended with unauthorized-access) are held and retried on their own
// backoff while another address flows, in order.
func testHeldAddresses(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	const n = 50
	for i := range n {
		appendMessages(t, st, cloudtest.RefusePrefix+"a", "dev", asked(fmt.Sprintf("h-r-%d", i), cloudtest.OutcomeAccept, 1))
		appendMessages(t, st, "held-ok", "dev", asked(fmt.Sprintf("h-ok-%d", i), cloudtest.OutcomeAccept, 1))
		appendMessages(t, st, cloudtest.ForbidPrefix+"b", "dev", asked(fmt.Sprintf("h-f-%d", i), cloudtest.OutcomeAccept, 1))
	}
	log, logs := newLogger()
	u := startUplink(t, protonConfig(s), st, log)
	ds := s.WaitFor(t, 20*time.Second, "held-ok delivered", func(ds []cloudtest.Delivery) bool {
		return accepted(ds, fmt.Sprintf("h-ok-%d", n-1))
	})
	var order []string
	for _, d := range ds {
		if strings.HasPrefix(d.ID, "h-") {
			order = append(order, d.ID)
		}
	}
	for i, id := range order {
		if want := fmt.Sprintf("h-ok-%d", i); id != want {
			t.Fatalf("delivery %d: got %s, want %s (only held-ok, in order)", i, id, want)
		}
	}
	// Both refused addresses are retried, each on its own schedule.
	checkFor(t, 10*time.Second, func() bool {
		var r, f int
		for _, e := range s.Events() {
			r += btoi(e.Event == "refused" && e.Address == "refuse/a")
			f += btoi(e.Event == "forbidden" && e.Address == "forbidden/b")
		}
		return r >= 3 && f >= 3
	}, func() string { return fmt.Sprintf("events %+v, want 3 refusals of each address", s.Events()) })
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 2*n }, func() string {
		return fmt.Sprintf("store: got %d messages, want %d (the held ones)", stored(t, st), 2*n)
	})
	// go-amqp reports a session ended by the peer as "link closed" on the session's
	// links, without the session's error.
	held := u.Status().Held
	if len(held) != 2 || held[0].Address != "forbidden/b" || held[1].Address != "refuse/a" || !strings.Contains(held[1].Reason, "amqp:not-found") {
		t.Errorf("held: got %+v, want forbidden/b and refuse/a (amqp:not-found)", held)
	}
	if u.Status().State != StateConnected {
		t.Errorf("state: got %v, want connected", u.Status().State)
	}
	if n := len(logs.lines("msg=disconnected")); n != 0 {
		t.Errorf("got %d disconnects, want none:\n%s", n, logs)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// testDrops checks a link the cloud detaches and a connection it closes while a
// message waits for its outcome: the message stays stored and arrives later.
func testDrops(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "drops-link", "dev", asked("d-link", cloudtest.OutcomeDetachLink, 1), asked("d-link-2", cloudtest.OutcomeAccept, 1))
	appendMessages(t, st, "drops-conn", "dev", asked("d-conn", cloudtest.OutcomeDropConnection, 1))
	startUplink(t, protonConfig(s), st, nil)
	s.WaitFor(t, 20*time.Second, "all accepted", func(ds []cloudtest.Delivery) bool {
		return accepted(ds, "d-link") && accepted(ds, "d-link-2") && accepted(ds, "d-conn")
	})
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if dls, _ := st.DeadLetters(); len(dls) != 0 {
		t.Errorf("dead letters: got %+v, want none", dls)
	}
}

// testMaxMessageSize checks a message larger than the cloud's max-message-size
// (§2.7.3): go-amqp refuses it before writing anything, and the uplink dead-letters it
// as unsendable; the messages before and after it go through on the same link.
func testMaxMessageSize(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	big := asked("m-big", cloudtest.OutcomeAccept, 1)
	big.Data = [][]byte{make([]byte, 2*cloudtest.SmallMaxMessageSize)}
	appendMessages(t, st, cloudtest.SmallPrefix+"sizes", "dev",
		asked("m-before", cloudtest.OutcomeAccept, 1), big, asked("m-after", cloudtest.OutcomeAccept, 1))
	u := startUplink(t, protonConfig(s), st, nil)
	s.WaitFor(t, 20*time.Second, "the small messages", func(ds []cloudtest.Delivery) bool {
		return accepted(ds, "m-before") && accepted(ds, "m-after")
	})
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if n := len(byID(s.Deliveries())["m-big"]); n != 0 {
		t.Errorf("the large message arrived %d times, want never", n)
	}
	dls, err := st.DeadLetters()
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Seq != 2 || !strings.Contains(dls[0].Reason, "max-message-size 1024") {
		t.Errorf("dead letters: got %+v, want seq 2 for exceeding max-message-size 1024", dls)
	}
	if st := u.Status(); st.Forwarded != 2 || st.DeadLettered != 1 {
		t.Errorf("status: got %+v, want 2 forwarded, 1 dead-lettered", st)
	}
}

// testModifiedRestart checks that what a modified outcome asked for (a higher
// delivery-count, annotations) is stored: an uplink started afresh on the store, as
// after a restart of the gateway, sends the message with it.
func testModifiedRestart(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "outcomes", "dev", asked("o-restart", cloudtest.OutcomeModifiedFailed, 1))
	cfg := protonConfig(s)
	cfg.RetryDelay = time.Hour // the first uplink never retries
	u, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	s.WaitFor(t, 20*time.Second, "the modified outcome", func(ds []cloudtest.Delivery) bool {
		return len(byID(ds)["o-restart"]) == 1
	})
	checkFor(t, 5*time.Second, func() bool { return u.Status().Released == 1 }, func() string {
		return fmt.Sprintf("status %+v, want 1 released", u.Status())
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	startUplink(t, protonConfig(s), st, nil)
	ds := s.WaitFor(t, 20*time.Second, "the retry", func(ds []cloudtest.Delivery) bool { return accepted(ds, "o-restart") })
	got := byID(ds)["o-restart"]
	if len(got) != 2 || got[1].DeliveryCount != 1 || got[1].Annotations["x-opt-cloud-attempt"] != "1" {
		t.Fatalf("deliveries %+v, want a second one with delivery-count 1 and x-opt-cloud-attempt 1", got)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
}
