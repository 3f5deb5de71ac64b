package uplink

import (
	"time"

	"github.com/shadowgw/shadowgw/edge/lograte"
)

// deadLetterLogEvery is the least time between two warn lines about dead letters.
const deadLetterLogEvery = 10 * time.Second

// deadLetterLog logs that message seq was dead-lettered: always at debug, at warn
// within the rate limit (u.deadLog: one line, then at most one per
// deadLetterLogEvery, counting the ones in between), so that a cloud that rejects
// everything does not flood the log.
func (u *Uplink) deadLetterLog(seq uint64, address, reason string) {
	u.log.Debug("dead-lettered", "seq", seq, "address", address, "reason", reason)
	u.deadLog.Warn(u.log, "message dead-lettered", "seq", seq, "address", address, "reason", reason)
}

// newDeadLog returns the rate limit of the warn lines about dead letters, on u's clock.
func (u *Uplink) newDeadLog() *lograte.Limiter {
	return &lograte.Limiter{
		Now:        func() time.Time { return u.clk.Now() },
		Every:      deadLetterLogEvery,
		Suppressed: "more_since_last_line",
	}
}
