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
