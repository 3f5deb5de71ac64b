package uplink

import (
	"github.com/shadowgw/shadowgw/hw/backoff"
	"slices"
	"sync"
	"time"
)

// HeldAddress is a target address the uplink does not send to for now: the cloud
// refused its link or session, or released a message sent to it. Its messages stay
// stored, in order, and are tried again at Until, each address on its own backoff,
// while the other addresses keep flowing.
type HeldAddress struct {
	Address  string    // the cloud's target address
	Reason   string    // why, e.g. "amqp:unauthorized-access: ..."
	Since    time.Time // when it was first held in this streak
	Until    time.Time // when it is tried again
	Failures int       // consecutive holds
}

// holds is the set of held addresses. It is safe for concurrent use: the sending and
// settling goroutines add to it, Status reads it.
type holds struct {
	mu   sync.Mutex
	m    map[string]*heldAddress
	rand func() float64
}

type heldAddress struct {
	HeldAddress
	stored string // the stored address whose messages go to this target
	bo     backoff.Backoff
}

// hold holds target, where messages stored under the address stored go, after a
// failure, for the next delay of its own backoff, which starts at min; a target
// already held and not yet due keeps its time.
func (h *holds) hold(target, stored, reason string, now time.Time, min, max time.Duration) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]*heldAddress{}
	}
	a := h.m[target]
	if a == nil {
		a = &heldAddress{HeldAddress: HeldAddress{Address: target, Since: now}, bo: backoff.Backoff{Min: min, Max: max, Rand: h.rand}}
		h.m[target] = a
	}
	a.Reason, a.stored = reason, stored
	if now.Before(a.Until) {
		return a.Until
	}
	a.Until = now.Add(a.bo.Next())
	a.Failures = a.bo.Failures
	return a.Until
}

// release forgets target's hold after the cloud accepted a message for it, unless
// the hold is newer than that message (not yet due at now): a message released while
// an earlier one was accepted keeps its address held.
func (h *holds) release(target string, now time.Time) {
	h.mu.Lock()
	if a, ok := h.m[target]; ok && !now.Before(a.Until) {
		delete(h.m, target)
	}
	h.mu.Unlock()
}

// held reports whether target is held at now.
func (h *holds) held(target string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.m[target]
	return a != nil && now.Before(a.Until)
}

// nextDueOf returns when target is tried again, zero if it is not held.
func (h *holds) nextDueOf(target string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.m[target]; a != nil {
		return a.Until
	}
	return time.Time{}
}

// nextDue returns the earliest Until after now of the held targets, zero if none.
func (h *holds) nextDue(now time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var due time.Time
	for _, a := range h.m {
		if now.Before(a.Until) && (due.IsZero() || a.Until.Before(due)) {
			due = a.Until
		}
	}
	return due
}

// storedHeldAt returns the stored addresses of the targets held at now. With an
// address template, one stored address may feed several targets: all its messages
// stay stored while one of them is held, which keeps each target's order.
func (h *holds) storedHeldAt(now time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, a := range h.m {
		if now.Before(a.Until) {
			out = append(out, a.stored)
		}
	}
	return out
}

// clear forgets every hold, when the uplink moves to another endpoint.
func (h *holds) clear() {
	h.mu.Lock()
	h.m = nil
	h.mu.Unlock()
}

// list returns the holds sorted by address.
func (h *holds) list() []HeldAddress {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HeldAddress, 0, len(h.m))
	for _, a := range h.m {
		out = append(out, a.HeldAddress)
	}
	slices.SortFunc(out, func(a, b HeldAddress) int {
		if a.Address < b.Address {
			return -1
		}
		if a.Address > b.Address {
			return 1
		}
		return 0
	})
	return out
}
