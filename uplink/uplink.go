package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// Source is what the uplink needs from the store; *store.Store implements it. Its
// methods must be safe for concurrent use.
type Source interface {
	// Read returns up to max messages with Seq > after, in Seq order.
	Read(after uint64, max int) ([]store.Message, error)
	// Delete removes messages after the cloud accepted them; it returns after the
	// commit.
	Delete(seqs ...uint64) error
	// DeadLetter moves a message the cloud refused, or that cannot be sent, aside.
	DeadLetter(seq uint64, reason string) error
	// Notify fires (capacity 1) after a commit that appended messages.
	Notify() <-chan struct{}
}

// shutdownGrace is how long a cancelled Run still waits for the outcomes of messages
// in flight, so that those the cloud accepted are deleted and not sent again.
const shutdownGrace = 2 * time.Second

// Uplink forwards stored messages to the cloud broker. Create it with New and call Run
// once; Status may be called from any goroutine at any time.
type Uplink struct {
	cfg        Config
	src        Source
	log        *slog.Logger
	endpoint   string // host:port
	serverName string
	durability amqp.Durability

	// Clock and randomness, replaceable by tests before Run.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	rand  func() float64

	running atomic.Bool
	st      status
	dead    deadLetters
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
	endpoint, _ := cfg.endpoint()
	durability, _ := cfg.durability()
	serverName := cfg.ServerName
	if serverName == "" {
		u, _ := url.Parse(cfg.URL)
		serverName = u.Hostname()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Uplink{
		cfg:        cfg,
		src:        src,
		log:        log.With("component", "uplink"),
		endpoint:   endpoint,
		serverName: serverName,
		durability: durability,
		now:        time.Now,
		after:      time.After,
		rand:       rand.Float64,
	}
	u.st.snap.Endpoint = endpoint
	return u, nil
}

// Status returns a snapshot of the uplink's state and counters.
func (u *Uplink) Status() Status { return u.st.get() }

// Run connects to the cloud and forwards messages until ctx is cancelled; then it
// waits briefly for outcomes in flight, closes the connection and returns nil. A
// failed connection, a refused link or a lost connection is logged (one line per
// attempt, at warn) and retried with exponential backoff; stored messages wait. Run
// returns an error only if the store was closed under it or Run was already running.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return errors.New("uplink: Run called twice")
	}
	defer u.st.update(func(s *Status) {
		s.State, s.ConnectedSince, s.NextRetry = StateStopped, time.Time{}, time.Time{}
	})
	u.log.Info("starting", "endpoint", u.endpoint, "user", u.cfg.User, "address_prefix", u.cfg.AddressPrefix)
	bo := backoff{min: u.cfg.BackoffMin, max: u.cfg.BackoffMax, rand: u.rand}
	for {
		u.st.update(func(s *Status) { s.State, s.NextRetry = StateConnecting, time.Time{} })
		ready, err := u.connection(ctx)
		if ctx.Err() != nil {
			u.log.Info("stopped")
			return nil
		}
		if errors.Is(err, store.ErrClosed) {
			return fmt.Errorf("uplink: %w", err)
		}
		if ready {
			bo.reset()
		}
		delay := bo.next()
		now := u.now()
		u.st.update(func(s *Status) {
			s.State, s.ConnectedSince, s.NextRetry = StateWaiting, time.Time{}, now.Add(delay)
			s.LastError, s.LastErrorAt, s.Failures = err.Error(), now, bo.failures
		})
		if ready {
			u.log.Warn("disconnected", "err", err, "retry_in", delay.Round(time.Millisecond))
		} else {
			u.log.Warn("connection failed", "err", err, "attempt", bo.failures, "retry_in", delay.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			u.log.Info("stopped")
			return nil
		case <-u.after(delay):
		}
	}
}

// connection makes one connection attempt and forwards until it fails or ctx ends.
// ready reports whether the connection worked for a while (see forwarder.markReady).
func (u *Uplink) connection(ctx context.Context) (ready bool, err error) {
	opts, err := u.cfg.connOptions(u.serverName)
	if err != nil {
		return false, err
	}
	dctx, cancel := context.WithTimeout(ctx, u.cfg.DialTimeout)
	defer cancel()
	conn, err := amqp.Dial(dctx, "amqps://"+u.endpoint, opts)
	if err != nil {
		return false, fmt.Errorf("connect to %s as %s: %w", u.endpoint, u.cfg.User, readable(err))
	}
	defer conn.Close()
	sess, err := conn.NewSession(dctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin session: %w", readable(err))
	}
	f := &forwarder{u: u, conn: conn, sess: sess, links: map[string]*amqp.Sender{}}
	err = f.run(ctx)
	return f.ready.Load(), err
}

// markConnected records that the connection works; called once per connection.
func (u *Uplink) markConnected() {
	now := u.now()
	u.st.update(func(s *Status) { s.State, s.ConnectedSince, s.Failures = StateConnected, now, 0 })
	u.log.Info("connected", "endpoint", u.endpoint, "user", u.cfg.User)
}
