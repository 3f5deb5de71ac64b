package uplink

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is what the uplink is doing.
type State int

// States of an Uplink.
const (
	// StateStopped: Run is not running.
	StateStopped State = iota
	// StateConnecting: a connection attempt is under way, or the connection is open
	// but has not yet shown that it works (no message accepted, not idle).
	StateConnecting
	// StateConnected: the connection works; messages are forwarded as they arrive.
	StateConnected
	// StateWaiting: the last attempt failed; the next one starts at Status.NextRetry.
	StateWaiting
)

// String returns the state's name in lower case.
func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateWaiting:
		return "waiting"
	}
	return "unknown"
}

// Status is a snapshot of an Uplink for status pages and metrics. It holds no secret.
type Status struct {
	State          State
	Endpoint       string    // "host:port" of the cloud broker in use or tried
	EndpointIndex  int       // its position in Config.URL, 0 for the preferred one
	ConnectedSince time.Time // zero unless State is StateConnected
	LastError      string    // the last connection failure, "" if none yet
	LastErrorAt    time.Time
	NextRetry      time.Time // zero unless State is StateWaiting
	Failures       int       // consecutive failed attempts

	Forwarded    uint64 // messages the cloud accepted since New
	DeadLettered uint64 // messages dead-lettered since New (rejected or unsendable)
	Released     uint64 // released or modified outcomes since New (sent again later)
	InFlight     int64  // messages sent and awaiting their outcome

	Held []HeldAddress // addresses held back, sorted; nil if none
}

// status holds what Status reports. The counters are updated by the forwarding
// goroutines; the rest, guarded by mu, by the Run goroutine.
type status struct {
	mu   sync.Mutex
	snap Status // counters in it are unused

	forwarded, deadLettered, released atomic.Uint64
	inFlight                          atomic.Int64
}

func (s *status) get(h *holds) Status {
	s.mu.Lock()
	st := s.snap
	s.mu.Unlock()
	st.Forwarded = s.forwarded.Load()
	st.DeadLettered = s.deadLettered.Load()
	st.Released = s.released.Load()
	st.InFlight = s.inFlight.Load()
	if l := h.list(); len(l) > 0 {
		st.Held = l
	}
	return st
}

func (s *status) update(f func(*Status)) {
	s.mu.Lock()
	f(&s.snap)
	s.mu.Unlock()
}
