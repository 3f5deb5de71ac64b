package uplink

import (
	"context"
	"errors"
	"fmt"
	"github.com/shadowgw/shadowgw/uplink/backoff"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// Source is what the uplink needs from the store; *store.Store implements it. Its
// methods must be safe for concurrent use.
type Source interface {
	// ReadNext returns up to max messages after the cursor and advances it past
	// them: routes by strict priority, highest first, each route in Seq order (see
	// store.Store.ReadNext). A zero Cursor reads from the start.
	ReadNext(c *store.Cursor, max int) ([]store.Message, error)
	// Delete removes messages after the cloud accepted them; it returns after the
	// commit.
	Delete(seqs ...uint64) error
	// DeadLetter moves a message the cloud refused, or that cannot be sent, aside.
	DeadLetter(seq uint64, reason string) error
	// Rewrite replaces a queued message's payload (after a modified outcome).
	Rewrite(seq uint64, payload []byte) error
	// Notify fires (capacity 1) after a commit that appended messages.
	Notify() <-chan struct{}
}

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

	// Clock and randomness, replaceable by tests before Run.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	rand  func() float64

	running atomic.Bool
	st      status
	dead    deadLetters
	held    holds
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
		now:        time.Now,
		after:      time.After,
		rand:       rand.Float64,
	}
	u.template, _ = ParseAddressTemplate(cfg.AddressTemplate) // checked by Validate
	u.held.rand = func() float64 { return u.rand() }
	u.limit = newLimiter(cfg.RateLimit, cfg.RateLimitBytes, func() time.Time { return u.now() }, func(d time.Duration) <-chan time.Time { return u.after(d) })
	u.st.snap.Endpoint = endpoints[0].addr
	return u, nil
}

// Status returns a snapshot of the uplink's state and counters.
func (u *Uplink) Status() Status { return u.st.get(&u.held) }

// switchEndpoint ends a working connection on purpose: to move to another endpoint
// (the preferred one answers again, or messages the cloud called undeliverable here
// wait), or to reconnect to the same one with changed credential files. The outcomes
// in flight are awaited first.
type switchEndpoint struct {
	index  int
	reason string
}

func (e *switchEndpoint) Error() string { return e.reason }

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
	bo := backoff.Backoff{Min: u.cfg.BackoffMin, Max: u.cfg.BackoffMax, Rand: u.rand}
	idx := 0
	for {
		ep := u.endpoints[idx]
		u.st.update(func(s *Status) {
			s.State, s.NextRetry, s.Endpoint, s.EndpointIndex = StateConnecting, time.Time{}, ep.addr, idx
		})
		ready, err := u.connection(ctx, idx)
		if ctx.Err() != nil {
			u.log.Info("stopped")
			return nil
		}
		if errors.Is(err, store.ErrClosed) {
			return fmt.Errorf("uplink: %w", err)
		}
		if sw := (*switchEndpoint)(nil); errors.As(err, &sw) {
			u.log.Info("reconnecting", "reason", sw.reason, "endpoint", u.endpoints[sw.index].addr, "endpoint_index", sw.index)
			if sw.index != idx {
				u.held.clear()
			}
			idx = sw.index
			bo.Reset()
			continue
		}
		if ready {
			bo.Reset()
		}
		// Move on to the next endpoint; back off once a whole round failed.
		next := (idx + 1) % len(u.endpoints)
		var delay time.Duration
		if next != 0 || ready {
			delay = u.cfg.BackoffMin/2 + time.Duration(u.rand()*float64(u.cfg.BackoffMin/2))
		} else {
			delay = bo.Next()
		}
		now := u.now()
		u.st.update(func(s *Status) {
			s.State, s.ConnectedSince, s.NextRetry = StateWaiting, time.Time{}, now.Add(delay)
			s.LastError, s.LastErrorAt, s.Failures = err.Error(), now, bo.Failures
		})
		if ready {
			u.log.Warn("disconnected", "err", err, "endpoint", ep.addr, "retry_in", delay.Round(time.Millisecond))
		} else {
			u.log.Warn("connection failed", "err", err, "endpoint", ep.addr, "attempt", bo.Failures, "retry_in", delay.Round(time.Millisecond))
		}
		if next != idx {
			u.held.clear()
		}
		idx = next
		select {
		case <-ctx.Done():
			u.log.Info("stopped")
			return nil
		case <-u.after(delay):
		}
	}
}

// dial opens a connection to endpoint idx with freshly read credential files.
func (u *Uplink) dial(ctx context.Context, idx int) (*amqp.Conn, string, error) {
	ep := u.endpoints[idx]
	opts, fingerprint, err := u.cfg.connOptions(ep.serverName)
	if err != nil {
		return nil, "", err
	}
	dctx, cancel := context.WithTimeout(ctx, u.cfg.DialTimeout)
	defer cancel()
	conn, err := amqp.Dial(dctx, "amqps://"+ep.addr, opts)
	if err != nil {
		who := u.cfg.User
		if who == "" {
			who = "SASL " + u.cfg.mechanism()
		}
		return nil, "", fmt.Errorf("connect to %s as %s: %w", ep.addr, who, readable(err))
	}
	return conn, fingerprint, nil
}

// connection makes one connection attempt to endpoint idx and forwards until it fails,
// ctx ends, or it is replaced on purpose (a *switchEndpoint error). ready reports
// whether the connection worked for a while (see forwarder.markReady).
func (u *Uplink) connection(ctx context.Context, idx int) (ready bool, err error) {
	stamp := u.credentialStamp()
	conn, fingerprint, err := u.dial(ctx, idx)
	if err != nil {
		return false, err
	}
	defer conn.Close()

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if u.cfg.CredentialCheck > 0 && stamp != "" {
		wg.Go(func() { u.watchCredentials(cctx, cancel, idx, stamp) })
	}
	if idx > 0 && u.cfg.PreferredProbeInterval > 0 {
		wg.Go(func() { u.probePreferred(cctx, cancel) })
	}
	f := &forwarder{u: u, conn: conn, idx: idx, fingerprint: fingerprint, links: map[string]*link{}}
	err = f.run(cctx)
	cancel(nil)
	wg.Wait()
	if ctx.Err() == nil && cctx.Err() != nil {
		if cause := context.Cause(cctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
	}
	return f.ready.Load(), err
}

// credentialStamp returns the modification times and sizes of the CA, certificate and
// key files, "" if there are none.
func (u *Uplink) credentialStamp() string {
	var s string
	for _, p := range []string{u.cfg.CAFile, u.cfg.CertFile, u.cfg.KeyFile} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			s += p + ":missing;"
			continue
		}
		s += fmt.Sprintf("%s:%d:%d;", p, fi.ModTime().UnixNano(), fi.Size())
	}
	return s
}

// watchCredentials polls the credential files every CredentialCheck and ends the
// connection gracefully when they changed, so that the next one uses them.
func (u *Uplink) watchCredentials(ctx context.Context, cancel context.CancelCauseFunc, idx int, stamp string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.after(u.cfg.CredentialCheck):
		}
		if now := u.credentialStamp(); now != stamp {
			// Let a writer finish replacing the files before they are read.
			select {
			case <-ctx.Done():
				return
			case <-u.after(100 * time.Millisecond):
			}
			cancel(&switchEndpoint{index: idx, reason: "certificate, key or CA file changed"})
			return
		}
	}
}

// probePreferred tries the preferred endpoint every PreferredProbeInterval while a
// fallback is in use, with a full TLS and SASL handshake, and ends the connection
// gracefully once it answers.
func (u *Uplink) probePreferred(ctx context.Context, cancel context.CancelCauseFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.after(u.cfg.PreferredProbeInterval):
		}
		conn, _, err := u.dial(ctx, 0)
		if err != nil {
			u.log.Debug("preferred endpoint still unreachable", "endpoint", u.endpoints[0].addr, "err", err)
			continue
		}
		conn.Close()
		cancel(&switchEndpoint{index: 0, reason: "preferred endpoint is reachable again"})
		return
	}
}

// markConnected records that the connection works; called once per connection.
func (u *Uplink) markConnected(idx int, fingerprint string) {
	now := u.now()
	u.st.update(func(s *Status) { s.State, s.ConnectedSince, s.Failures = StateConnected, now, 0 })
	attrs := []any{"endpoint", u.endpoints[idx].addr, "endpoint_index", idx, "sasl", u.cfg.mechanism()}
	if u.cfg.User != "" {
		attrs = append(attrs, "user", u.cfg.User)
	}
	if fingerprint != "" {
		attrs = append(attrs, "client_cert_sha256", fingerprint)
	}
	u.log.Info("connected", attrs...)
}
