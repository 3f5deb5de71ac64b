package main

import (
	"sync/atomic"
	"time"

	"github.com/shadowgw/shadowgw/store"
)

// statusReport is what /status serves and `shadowgw status` prints. It holds no secret.
// Times are RFC 3339, durations and ages are seconds, sizes are bytes.
type statusReport struct {
	Version     string          `json:"version"`
	PID         int             `json:"pid"`
	Started     time.Time       `json:"started"`
	Time        time.Time       `json:"time"`
	Ready       bool            `json:"ready"`
	NotReady    string          `json:"not_ready,omitempty"` // why not, when Ready is false
	Problems    []string        `json:"problems,omitempty"`  // what needs a person's attention
	Uplink      uplinkReport    `json:"uplink"`
	Devices     deviceReport    `json:"devices"`
	Store       storeReport     `json:"store"`
	Routes      []routeReport   `json:"routes"` // highest priority first
	DeadLetters countReport     `json:"dead_letters"`
	Rates       rateReport      `json:"rates"`
	Disk        diskReport      `json:"disk"`
	Inputs      []inputStatus   `json:"inputs"`
	Commands    *commandsReport `json:"commands,omitempty"` // devicecommands_status.go
	MQTT        *mqttReport     `json:"mqtt,omitempty"`     // absent without [mqtt] listen

	// Direct lists the direct routes ([route] mode = direct), which queue nothing.
	Direct []directReport `json:"direct,omitempty"`
}

type uplinkReport struct {
	Configured     bool      `json:"configured"`
	State          string    `json:"state"` // "none" when not configured, else uplink.State
	Endpoint       string    `json:"endpoint,omitempty"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	NextRetry      time.Time `json:"next_retry,omitzero"`
	Failures       int       `json:"failures"` // consecutive failed attempts
	Forwarded      uint64    `json:"forwarded"`
	DeadLettered   uint64    `json:"dead_lettered"`
	Released       uint64    `json:"released"`
	InFlight       int64     `json:"in_flight"`
}

type deviceReport struct {
	Connected        int64  `json:"connected"`
	ConnectionsTotal uint64 `json:"connections_total"`
	Refused          uint64 `json:"refused"`
	Messages         uint64 `json:"messages"` // received and stored
	Bytes            uint64 `json:"bytes"`
	Rejected         uint64 `json:"rejected"`
	Dropped          uint64 `json:"dropped"`
}

// storeReport is the store as a whole; routeReport one of its routes.
type storeReport struct {
	Messages uint64 `json:"messages"` // queued, over all routes
	Bytes    uint64 `json:"bytes"`
	Dropped  uint64 `json:"dropped"` // to make room (drop-oldest) since start, over all routes
	// FullReason says why no route can take a message ("max-bytes", "max-messages",
	// "min-free", "disk", or the default route's own budget), absent when some can.
	FullReason string `json:"full_reason,omitempty"`
	// Recovered is set when the gateway found the store file damaged at start, moved
	// it aside and started a fresh one.
	Recovered *store.Recovered `json:"recovered,omitempty"`
	// DroppedTotal and ExpiredTotal count over the life of the store file, across
	// restarts.
	DroppedTotal uint64 `json:"dropped_total"`
	ExpiredTotal uint64 `json:"expired_total"`
	// AckLatency is how long messages waited for the commit that made them durable
	// (group commit), over the last one to two minutes.
	AckLatency latencyReport `json:"ack_latency"`
}

// latencyReport is a store.Latency in milliseconds.
type latencyReport struct {
	Count uint64  `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type routeReport struct {
	Name        string `json:"name"`
	Priority    int    `json:"priority"`
	WhenFull    string `json:"when_full"`
	MaxBytes    uint64 `json:"max_bytes"`    // the route's own budget, 0: none
	MaxMessages uint64 `json:"max_messages"` // the route's own budget, 0: none
	Messages    uint64 `json:"messages"`
	Bytes       uint64 `json:"bytes"`
	Dropped     uint64 `json:"dropped"` // to make room since start
	// FullReason says why devices sending to the route get no credit, absent when
	// they do: "route max-bytes", "route max-messages" (its own budget), or one of
	// the store's (see storeReport).
	FullReason string `json:"full_reason,omitempty"`
	// Orphan is set for a route the store file has but the configuration no longer
	// names: its messages moved to the configured routes at start (those it could
	// not read stay and are forwarded at priority 0).
	Orphan           bool      `json:"orphan,omitempty"`
	OldestReceived   time.Time `json:"oldest_received,omitzero"`
	OldestAgeSeconds float64   `json:"oldest_age_seconds"`
}

type countReport struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

type rateReport struct {
	WindowSeconds        float64 `json:"window_seconds"`
	InMessagesPerSecond  float64 `json:"in_messages_per_second"`
	InBytesPerSecond     float64 `json:"in_bytes_per_second"`
	OutMessagesPerSecond float64 `json:"out_messages_per_second"` // forwarded and dead-lettered
	// TimeToEmptySeconds estimates when the backlog is empty at these rates: 0 when it
	// is, absent when it is not shrinking.
	TimeToEmptySeconds *float64 `json:"time_to_empty_seconds,omitempty"`
}

type diskReport struct {
	Dir            string `json:"dir"`
	FreeBytes      uint64 `json:"free_bytes"`
	SizeBytes      uint64 `json:"size_bytes"`
	StoreFileBytes int64  `json:"store_file_bytes"`
	// WrittenToday is what the process wrote to storage since local midnight, or since
	// it started if that was later; WrittenSinceStart since it started. Both are absent
	// when the kernel does not account I/O per process (/proc/self/io).
	WrittenToday      *uint64 `json:"written_today_bytes,omitempty"`
	WrittenSinceStart *uint64 `json:"written_since_start_bytes,omitempty"`
	Error             string  `json:"error,omitempty"`
}

// inputStatus is one sensor input on the status page. The inputs sidecar fills it
// through parts.Inputs.
type inputStatus struct {
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`  // what is read, e.g. "bme280" or "gpio"
	State      string    `json:"state"` // e.g. "ok" or "failing"
	LastSample time.Time `json:"last_sample,omitzero"`
	Samples    uint64    `json:"samples"` // readings stored since start
	LastError  string    `json:"last_error,omitempty"`
}

// inputReport is how the sensor inputs appear in the status: the inputs sidecar sets
// the function that reports them when it starts, and nil when it stops; the monitor
// calls it. It is safe for concurrent use.
type inputReport struct {
	f atomic.Pointer[func() []inputStatus]
}

// set makes f the source of the status's inputs. f is called from HTTP handlers, so it
// must be safe for concurrent use and quick.
func (r *inputReport) set(f func() []inputStatus) {
	if f == nil {
		r.f.Store(nil)
		return
	}
	r.f.Store(&f)
}

// get returns the inputs' status; none when r is nil or nothing reports.
func (r *inputReport) get() []inputStatus {
	if r == nil {
		return nil
	}
	if f := r.f.Load(); f != nil {
		return (*f)()
	}
	return nil
}
