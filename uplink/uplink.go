package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/lograte"
	"github.com/shadowgw/shadowgw/hw/backoff"
)

// shutdownGrace is how long a cancelled Run, or a connection being replaced, still
// waits for the outcomes of messages in flight, so that those the cloud accepted are
// deleted rather than sent again.
const shutdownGrace = 2 * time.Second

// Uplink forwards stored messages to the cloud broker. Create it with New and call Run
// once; Status may be called from any goroutine at any time.
type Uplink struct {
	cfg        Config
	src        Source
	log        *slog.Logger
	endpoints  []endpoint
	durability amqp.Durability
	template   AddressTemplate // see cloudAddress
	limit      *limiter

	clk clock // replaceable by tests before Run

	running atomic.Bool
	st      status
	deadLog *lograte.Limiter // warn lines about dead letters
	held    holds
	direct  *Direct          // the user that forwards direct routes
	cmds    *commandReceiver // receiver.go; nil: no commands
}

// New checks cfg and returns an Uplink that reads from src and logs to log (nil:
// discard) with component=uplink. It does not connect; Run does.
func New(cfg Config, src Source, log *slog.Logger) (*Uplink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, fmt.Errorf("uplink: no message source: %w", ErrConfig)
	}
	cfg = cfg.withDefaults()
	endpoints, _ := cfg.endpoints()
	durability, _ := cfg.durability()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Uplink{
		cfg:        cfg,
		src:        src,
		log:        log.With("component", "uplink"),
		endpoints:  endpoints,
		durability: durability,
		clk:        clock{Clock: backoff.System{}, rand: rand.Float64},
	}
	u.template, _ = ParseAddressTemplate(cfg.AddressTemplate) // checked by Validate
	u.deadLog = u.newDeadLog()
	u.held.rand = func() float64 { return u.clk.rand() }
	u.limit = newLimiter(cfg.RateLimit, cfg.RateLimitBytes, func() time.Time { return u.clk.Now() }, func(d time.Duration) <-chan time.Time { return u.clk.After(d) })
	u.st.snap.Endpoint = endpoints[0].addr
	u.direct = newDirect(u)
	return u, nil
}

// Status returns a snapshot of the uplink's state and counters.
func (u *Uplink) Status() Status { return u.st.get(&u.held) }

// Run connects to the cloud and forwards messages until ctx is cancelled; then it
// waits briefly for outcomes in flight, closes the connection and returns nil. A
// failed connection, a refused link or a lost connection is logged (one line per
// attempt, at warn) and retried, on the next endpoint if there are several, with
// exponential backoff once every endpoint failed; stored messages wait. Run returns
// an error only if the store was closed under it or Run was already running.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return errors.New("uplink: Run called twice")
	}
	defer u.st.update(func(s *Status) {
		s.State, s.ConnectedSince, s.NextRetry = StateStopped, time.Time{}, time.Time{}
	})
	addrs := make([]string, len(u.endpoints))
	for i, ep := range u.endpoints {
		addrs[i] = ep.addr
	}
	u.log.Info("starting", "endpoints", addrs, "sasl", u.cfg.mechanism(), "user", u.cfg.User, "address_prefix", u.cfg.AddressPrefix)
	sup := &supervisor{
		cfg: &u.cfg, endpoints: u.endpoints, log: u.log, st: &u.st, clk: &u.clk,
		users: u.users(),
		moved: u.held.clear,
	}
	return sup.run(ctx, isStoreClosed)
}

// debugging reports whether debug lines are logged: per-message debug lines are
// built only then (their arguments cost allocations even when discarded). The level
// is asked each time, since it may change while running.
func (u *Uplink) debugging() bool {
	return u.log.Enabled(context.Background(), slog.LevelDebug)
}
