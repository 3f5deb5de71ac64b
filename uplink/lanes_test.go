package uplink

import (
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
