package backoff

import "time"

// Clock is a source of time for code that stamps readings and waits between attempts;
// tests inject one that moves on command. Packages that only need the time (the store
// expiring messages) declare the one-method interface they use, which every Clock
// satisfies.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// System is the Clock of the operating system: time.Now and time.After.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (System) After(d time.Duration) <-chan time.Time { return time.After(d) }
