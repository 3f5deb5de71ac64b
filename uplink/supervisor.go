package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/hw/backoff"
)

// user is a part of the uplink that works on its connection to the cloud: the
// forwarder now; a receiver of cloud-to-device commands and direct links later.
// The supervisor hands every user each connection it opens, in a goroutine of its
// own, and ends all of them together, so a user learns that the connection came
// back when serve is called again, and that it went when serve's ctx ends.
type user interface {
	// serve works on c, with sessions and links of its own, until ctx ends or it
	// fails. ctx ends when the connection goes: lost, failed for another user,
	// replaced on purpose (context.Cause is then a *switchEndpoint), or the uplink
	// stopping; serve then has shutdownGrace to finish (awaiting outcomes in
	// flight) and returns. Its error says why the connection should end: a failure
	// (logged, and the supervisor reconnects), a *switchEndpoint (a graceful move),
	// or store.ErrClosed (the uplink stops). Before serve returns, the goroutines it
	// started have exited.
	serve(ctx context.Context, c *connection) error
}

// connection is one open AMQP connection to one endpoint, shared by the users.
// Its methods are safe for concurrent use.
type connection struct {
	conn        *amqp.Conn
	index       int    // endpoint index in Config.URL
	endpoints   int    // how many endpoints there are
	fingerprint string // of the client certificate, for the log

	ready     atomic.Bool
	readyOnce sync.Once
	onReady   func() // called once, by markReady
}

// newSession begins a session on the connection (AMQP 1.0 §2.5.1).
func (c *connection) newSession(ctx context.Context) (*amqp.Session, error) {
	return c.conn.NewSession(ctx, nil)
}

// done is closed when the connection is gone.
func (c *connection) done() <-chan struct{} { return c.conn.Done() }

// lostErr returns why the connection was lost, fit for one log line.
func (c *connection) lostErr() error {
	return fmt.Errorf("connection lost: %w", readable(c.conn.Err()))
}

// lost reports whether err, from a link or session, means the whole connection is
// gone. A link or session error on a live connection concerns that link only.
func (c *connection) lost(err error) bool {
	if ce := (*amqp.ConnError)(nil); errors.As(err, &ce) {
		return true
	}
	select {
	case <-c.conn.Done():
		return true
	case <-time.After(100 * time.Millisecond): // the connection's error may trail the link's
		select {
		case <-c.conn.Done():
			return true
		default:
			return false
		}
	}
}

// markReady records, once, that the connection works (a user had a message
// accepted, or found nothing to do and waits): the supervisor then logs it as
// connected, and counts a later loss as a disconnection, not a failed attempt.
func (c *connection) markReady() {
	c.readyOnce.Do(func() {
		c.ready.Store(true)
		c.onReady()
	})
}

// switchEndpoint ends a working connection on purpose: to move to another endpoint
// (the preferred one answers again, or messages the cloud called undeliverable here
// wait), or to reconnect to the same one with changed credential files. The users
// finish what is in flight first (up to shutdownGrace).
type switchEndpoint struct {
	index  int
	reason string
}

func (e *switchEndpoint) Error() string { return e.reason }

// supervisor owns the uplink's connection: it dials the endpoints in turn with a
// backoff, probes the preferred endpoint while on a fallback, watches the credential
// files, and runs the users on each connection. All its state is owned by the
// goroutine that calls run.
type supervisor struct {
	cfg       *Config
	endpoints []endpoint
	log       *slog.Logger
	st        *status
	clk       *clock
	users     []user
	// moved is called when the supervisor leaves an endpoint for another one.
	moved func()
}

// run connects and reconnects until ctx ends or a user reports that the store is
// closed; see Uplink.Run.
func (s *supervisor) run(ctx context.Context, storeClosed func(error) bool) error {
	bo := backoff.Backoff{Min: s.cfg.BackoffMin, Max: s.cfg.BackoffMax, Rand: s.clk.rand}
	idx := 0
	for {
		ep := s.endpoints[idx]
		s.st.update(func(st *Status) {
			st.State, st.NextRetry, st.Endpoint, st.EndpointIndex = StateConnecting, time.Time{}, ep.addr, idx
		})
		ready, err := s.connect(ctx, idx)
		if ctx.Err() != nil {
			s.log.Info("stopped")
			return nil
		}
		if storeClosed(err) {
			return fmt.Errorf("uplink: %w", err)
		}
		if sw := (*switchEndpoint)(nil); errors.As(err, &sw) {
			s.log.Info("reconnecting", "reason", sw.reason, "endpoint", s.endpoints[sw.index].addr, "endpoint_index", sw.index)
			if sw.index != idx {
				s.moved()
			}
			idx = sw.index
			bo.Reset()
			continue
		}
		if ready {
			bo.Reset()
		}
		// Move on to the next endpoint; back off once a whole round failed.
		next := (idx + 1) % len(s.endpoints)
		var delay time.Duration
		if next != 0 || ready {
			delay = s.cfg.BackoffMin/2 + time.Duration(s.clk.rand()*float64(s.cfg.BackoffMin/2))
		} else {
			delay = bo.Next()
		}
		now := s.clk.Now()
		s.st.update(func(st *Status) {
			st.State, st.ConnectedSince, st.NextRetry = StateWaiting, time.Time{}, now.Add(delay)
			st.LastError, st.LastErrorAt, st.Failures = err.Error(), now, bo.Failures
		})
		if ready {
			s.log.Warn("disconnected", "err", err, "endpoint", ep.addr, "retry_in", delay.Round(time.Millisecond))
		} else {
			s.log.Warn("connection failed", "err", err, "endpoint", ep.addr, "attempt", bo.Failures, "retry_in", delay.Round(time.Millisecond))
		}
		if next != idx {
			s.moved()
		}
		idx = next
		select {
		case <-ctx.Done():
			s.log.Info("stopped")
			return nil
		case <-s.clk.After(delay):
		}
	}
}

// dial opens a connection to endpoint idx with freshly read credential files.
func (s *supervisor) dial(ctx context.Context, idx int) (*amqp.Conn, string, error) {
	ep := s.endpoints[idx]
	opts, fingerprint, err := s.cfg.connOptions(ep.serverName)
	if err != nil {
		return nil, "", err
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := dialCoalescing(dctx, ep.addr, opts)
	if err != nil {
		who := s.cfg.User
		if who == "" {
			who = "SASL " + s.cfg.mechanism()
		}
		return nil, "", fmt.Errorf("connect to %s as %s: %w", ep.addr, who, readable(err))
	}
	return conn, fingerprint, nil
}

// connect makes one connection attempt to endpoint idx and runs the users on it
// until one of them fails, ctx ends, or the connection is replaced on purpose (a
// *switchEndpoint error). ready reports whether the connection worked (see
// connection.markReady).
func (s *supervisor) connect(ctx context.Context, idx int) (ready bool, err error) {
	stamp := s.credentialStamp()
	conn, fingerprint, err := s.dial(ctx, idx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	c := &connection{conn: conn, index: idx, endpoints: len(s.endpoints), fingerprint: fingerprint}
	c.onReady = func() { s.markConnected(c) }

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if s.cfg.CredentialCheck > 0 && stamp != "" {
		wg.Go(func() { s.watchCredentials(cctx, cancel, idx, stamp) })
	}
	if idx > 0 && s.cfg.PreferredProbeInterval > 0 {
		wg.Go(func() { s.probePreferred(cctx, cancel) })
	}
	// The first user to end ends the connection for all; its error is the reason.
	for _, u := range s.users {
		wg.Go(func() {
			err := u.serve(cctx, c)
			if err == nil {
				err = errors.New("forwarding stopped") // not reached: serve always has a reason
			}
			cancel(err)
		})
	}
	<-cctx.Done()
	wg.Wait()
	if ctx.Err() != nil {
		return c.ready.Load(), context.Cause(ctx)
	}
	return c.ready.Load(), context.Cause(cctx)
}

// credentialStamp returns the modification times and sizes of the CA, certificate and
// key files, "" if there are none.
func (s *supervisor) credentialStamp() string {
	var st string
	for _, p := range []string{s.cfg.CAFile, s.cfg.CertFile, s.cfg.KeyFile} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			st += p + ":missing;"
			continue
		}
		st += fmt.Sprintf("%s:%d:%d;", p, fi.ModTime().UnixNano(), fi.Size())
	}
	return st
}

// watchCredentials polls the credential files every CredentialCheck and ends the
// connection gracefully when they changed, so that the next one uses them.
func (s *supervisor) watchCredentials(ctx context.Context, cancel context.CancelCauseFunc, idx int, stamp string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clk.After(s.cfg.CredentialCheck):
		}
		if now := s.credentialStamp(); now != stamp {
			// Let a writer finish replacing the files before they are read.
			select {
			case <-ctx.Done():
				return
			case <-s.clk.After(100 * time.Millisecond):
			}
			cancel(&switchEndpoint{index: idx, reason: "certificate, key or CA file changed"})
			return
		}
	}
}

// probePreferred tries the preferred endpoint every PreferredProbeInterval while a
// fallback is in use, with a full TLS and SASL handshake, and ends the connection
// gracefully once it answers.
func (s *supervisor) probePreferred(ctx context.Context, cancel context.CancelCauseFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clk.After(s.cfg.PreferredProbeInterval):
		}
		conn, _, err := s.dial(ctx, 0)
		if err != nil {
			s.log.Debug("preferred endpoint still unreachable", "endpoint", s.endpoints[0].addr, "err", err)
			continue
		}
		conn.Close()
		cancel(&switchEndpoint{index: 0, reason: "preferred endpoint is reachable again"})
		return
	}
}

// markConnected records that the connection works; called once per connection.
func (s *supervisor) markConnected(c *connection) {
	now := s.clk.Now()
	s.st.update(func(st *Status) { st.State, st.ConnectedSince, st.Failures = StateConnected, now, 0 })
	attrs := []any{"endpoint", s.endpoints[c.index].addr, "endpoint_index", c.index, "sasl", s.cfg.mechanism()}
	if s.cfg.User != "" {
		attrs = append(attrs, "user", s.cfg.User)
	}
	if c.fingerprint != "" {
		attrs = append(attrs, "client_cert_sha256", c.fingerprint)
	}
	s.log.Info("connected", attrs...)
}

// clock is the uplink's time (the one Clock of package backoff) and randomness,
// replaceable by tests before Run.
type clock struct {
	backoff.Clock
	rand func() float64 // in [0, 1), for jitter
}
