package uplink

import (
	"fmt"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// testMissedHoldDue: a hold that starts and ends while the reader waits for room in
// a lane (here one paced by the rate limit) still ends the pipeline once due, so the
// released message is sent again long before the other address is drained.
func testMissedHoldDue(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "hd-rel", "dev", asked("hd-rel-0", cloudtest.OutcomeRelease, 1))
	for i := range 150 {
		appendMessages(t, st, "hd-flow", "dev", numbered("hd-flow", i))
	}
	cfg := protonConfig(s)
	cfg.RateLimit = 30 // 150 messages take about 4 s
	cfg.RetryDelay = 100 * time.Millisecond
	startUplink(t, cfg, st, nil)
	s.WaitFor(t, 3*time.Second, "hd-rel-0 sent again and accepted after its hold", func(ds []cloudtest.Delivery) bool {
		return accepted(ds, "hd-rel-0")
	})
}

// testSlowCredit: an address whose link gets credit slowly but never stops (one
// per 300 ms, so no single send waits creditWait) is passed by like one without
// credit: the messages of another address stored behind it go on at once.
func testSlowCredit(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	for i := range 150 {
		appendMessages(t, st, cloudtest.TricklePrefix+"sc", "dev", numbered("sc-trickle", i))
	}
	for i := range 10 {
		appendMessages(t, st, "sc-flow", "dev", numbered("sc-flow", i))
	}
	cfg := protonConfig(s)
	cfg.StallTimeout = 30 * time.Second
	startUplink(t, cfg, st, nil)
	s.WaitFor(t, 3*time.Second, "all of sc-flow accepted", allAccepted("sc-flow", 10))
}

// testRetryBarrier: a pipeline that ends to send a released message again does not
// wait for a slow outcome on another address (3 s here) before the next one starts;
// a third address, appended to at a steady pace, keeps flowing meanwhile.
func testRetryBarrier(t *testing.T, s *cloudtest.ProtonServer) {
	st := openStore(t, false)
	appendMessages(t, st, "rb-slow", "dev", asked("rb-slow-0", cloudtest.OutcomeDelayAccept, 1))
	cfg := protonConfig(s)
	cfg.StallTimeout = 30 * time.Second
	startUplink(t, cfg, st, nil)
	s.WaitFor(t, 5*time.Second, "rb-slow-0 sent", func(ds []cloudtest.Delivery) bool { return len(byID(ds)["rb-slow-0"]) == 1 })
	appendMessages(t, st, "rb-rel", "dev", asked("rb-rel-0", cloudtest.OutcomeRelease, 1))

	const n, pace = 50, 50 * time.Millisecond
	appended := map[string]time.Time{}
	var worst time.Duration
	var worstID string
	late := func(id string, at time.Time) {
		if l := time.Since(at); l > worst {
			worst, worstID = l, id
		}
	}
	for i := range n {
		m := numbered("rb-flow", i)
		appended[m.Properties.MessageID.(string)] = time.Now()
		appendMessages(t, st, "rb-flow", "dev", m)
		time.Sleep(pace)
		for _, d := range s.Deliveries() {
			if at, ok := appended[d.ID]; ok {
				late(d.ID, at)
				delete(appended, d.ID)
			}
		}
	}
	for id, at := range appended {
		late(id+" (not sent)", at)
	}
	if worst > time.Second {
		t.Errorf("rb-flow held up %v (%s) by a release on rb-rel and a slow outcome on rb-slow; want at most 1s", worst.Round(time.Millisecond), worstID)
	}
	checkFor(t, 5*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0 (all accepted, rb-slow-0 late)", stored(t, st))
	})
}
