package mqtt

import (
	"context"
	"errors"
	"fmt"
	"github.com/shadowgw/shadowgw/edge/acl"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shadowgw/shadowgw/edge/lograte"
)

// resumeInterval is how often a connection held back by a full Sink asks again.
const resumeInterval = 200 * time.Millisecond

// Stats are the server's counters.
type Stats struct {
	Connections      int64 // open now
	ConnectionsTotal uint64
	Refused          uint64 // connections refused by limits, authentication or protocol errors before CONNACK
	Messages         uint64 // messages stored (wills included)
	Bytes            uint64 // AMQP bytes stored
	Dropped          uint64 // QoS 0 messages that could not be stored

	CommandsSent         uint64 // commands published to subscribers (resent ones included)
	CommandsResent       uint64 // of which sent again in a resumed session, with DUP
	CommandsDelivered    uint64 // acknowledged (QoS 1) or written (QoS 0): deleted from the queue
	CommandsDeadLettered uint64 // refused by the client (PUBACK ≥ 0x80) or with no MQTT form
}

// Server is the MQTT server. It is safe for concurrent use.
type Server struct {
	cfg      Config
	sink     Sink
	commands Commands // nil: every subscription is refused
	log      *slog.Logger

	access atomic.Pointer[access] // set by SetAccess; nil: cfg.Users and cfg.Targets

	mu       sync.Mutex
	conns    map[*conn]struct{}
	clients  map[string]*conn       // client identifier → its connection
	sessions map[string]*session    // state kept for disconnected clients
	wills    map[string]*time.Timer // MQTT 5 wills waiting for their Will Delay Interval
	willWG   sync.WaitGroup         // will timers started and not stopped
	stopped  bool                   // Serve is ending: no new delayed wills
	wg       sync.WaitGroup
	nextID   atomic.Uint64

	// Warnings a device can cause again and again are rate-limited.
	logRefused, logGone, logDenied, logNotStored lograte.Limiter

	open             atomic.Int64
	connectionsTotal atomic.Uint64
	refused          atomic.Uint64
	messages         atomic.Uint64
	bytes            atomic.Uint64
	dropped          atomic.Uint64
	cmdSent          atomic.Uint64
	cmdResent        atomic.Uint64
	cmdDelivered     atomic.Uint64
	cmdDead          atomic.Uint64
}

// New returns a Server that stores into sink and delivers the commands of commands to
// the clients that subscribe to them (nil: every subscription is refused). log may be
// nil.
func New(cfg Config, sink Sink, commands Commands, log *slog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		sink:     sink,
		commands: commands,
		log:      log.With("component", "mqtt"),
		conns:    make(map[*conn]struct{}),
		clients:  make(map[string]*conn),
		sessions: make(map[string]*session),
		wills:    make(map[string]*time.Timer),
	}
	for _, l := range []*lograte.Limiter{&s.logRefused, &s.logGone, &s.logDenied, &s.logNotStored} {
		l.Every, l.Suppressed = logInterval, "suppressed"
	}
	return s
}

// logInterval is the least time between two warnings of one kind: a device that sends
// garbage in a loop must not flood the log.
const logInterval = time.Second

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:      s.open.Load(),
		ConnectionsTotal: s.connectionsTotal.Load(),
		Refused:          s.refused.Load(),
		Messages:         s.messages.Load(),
		Bytes:            s.bytes.Load(),
		Dropped:          s.dropped.Load(),

		CommandsSent:         s.cmdSent.Load(),
		CommandsResent:       s.cmdResent.Load(),
		CommandsDelivered:    s.cmdDelivered.Load(),
		CommandsDeadLettered: s.cmdDead.Load(),
	}
}

// Serve accepts clients on ln until ctx is done, then closes ln, asks every connection
// to finish (acknowledging what the Sink completes) and returns once all connection
// goroutines have exited. It returns nil after a cancellation and the accept error
// otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var tempDelay time.Duration
	var err error
	for {
		var nc net.Conn
		nc, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			err = fmt.Errorf("mqtt: accept: %w", err)
			break
		}
		tempDelay = 0
		s.start(ctx, nc)
	}
	s.wg.Wait()
	s.stopWills()
	return err
}

func (s *Server) start(ctx context.Context, nc net.Conn) {
	s.mu.Lock()
	if len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.refused.Add(1)
		s.logRefused.Warn(s.log, "mqtt connection refused: limit reached", "remote", nc.RemoteAddr().String(), "max", s.cfg.MaxConnections)
		nc.Close()
		return
	}
	c := newConn(s, nc, s.nextID.Add(1))
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.open.Add(1)
	s.connectionsTotal.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve(ctx)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.open.Add(-1)
	}()
}

// anonymousFrom reports whether an anonymous client may connect from addr.
func (s *Server) anonymousFrom(addr net.Addr) bool {
	return acl.AnonymousFrom(s.cfg.AllowAnonymous, s.cfg.AnonymousNetworks, addr)
}

// mayPublish reports whether user ("" for anonymous) may publish to topic.
func (s *Server) mayPublish(user, topic string) bool {
	return acl.MayTarget(s.currentAccess().targets, user, topic)
}

// session is what the server keeps of a client between connections (§4.1 in both
// versions): the QoS 2 packet identifiers whose message is stored and whose PUBREL
// has not arrived (§4.3.3), the subscriptions, and the commands sent with QoS 1 and
// not acknowledged (resent with DUP, §4.4). Sessions live in memory: a gateway
// restart forgets them (the commands stay queued in the store).
type session struct {
	awaitingRel map[uint16]struct{}
	subs        []sub
	out         []savedOut
	expires     time.Time // zero: never (3.1.1 CleanSession 0)
}

// savedOut is an unacknowledged command of a session.
type savedOut struct {
	id     uint16
	device string
	seq    uint64
}

// claim makes c the connection of clientID and returns the session kept for it, if
// any and not expired. A connection already using clientID is taken over: it is told
// to close (MQTT 5 reason Session taken over) and claim waits until it has ended, so
// that its session state is complete.
func (s *Server) claim(ctx context.Context, clientID string, c *conn) *session {
	for {
		s.mu.Lock()
		old := s.clients[clientID]
		if old == nil || old == c {
			s.clients[clientID] = c
			s.cancelWill(clientID) // 5.0 §3.1.3.2.2: the client is back in time
			sess := s.sessions[clientID]
			delete(s.sessions, clientID)
			s.mu.Unlock()
			if sess != nil && !sess.expires.IsZero() && time.Now().After(sess.expires) {
				sess = nil
			}
			return sess
		}
		s.mu.Unlock()
		old.kick()
		select {
		case <-old.done:
		case <-ctx.Done():
			return nil
		}
	}
}

// release ends c's hold on clientID, keeping sess for a later connection (nil: none).
func (s *Server) release(clientID string, c *conn, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[clientID] == c {
		delete(s.clients, clientID)
	}
	if sess == nil {
		return
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		now := time.Now()
		for id, old := range s.sessions { // drop expired ones, then any one
			if !old.expires.IsZero() && now.After(old.expires) {
				delete(s.sessions, id)
			}
		}
		for id := range s.sessions {
			if len(s.sessions) < s.cfg.MaxSessions {
				break
			}
			delete(s.sessions, id)
		}
	}
	s.sessions[clientID] = sess
}

// access is who may log in and where each client may publish.
type access struct {
	users   map[string]string
	targets map[string][]string
}

// SetAccess replaces the users (name → credential hash) and the per-user topic
// restrictions (see Config.Targets) for clients that connect or publish from now on.
// It is safe to call while the server runs; it copies the maps.
func (s *Server) SetAccess(users map[string]string, targets map[string][]string) {
	s.access.Store(&access{users: maps.Clone(users), targets: maps.Clone(targets)})
}

func (s *Server) currentAccess() *access {
	if a := s.access.Load(); a != nil {
		return a
	}
	return &access{users: s.cfg.Users, targets: s.cfg.Targets}
}
