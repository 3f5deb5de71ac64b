package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shadowgw/shadowgw/edge/lograte"
	"github.com/shadowgw/shadowgw/edge/message"
)

// Config is the device-facing server's configuration. Zero fields take the defaults
// documented on each.
type Config struct {
	ContainerID      string            // our container-id; default "shadowgw"
	MaxFrameSize     uint32            // largest frame accepted (§2.7.1); default 65536, at least 512
	MaxSessions      int               // sessions per connection (channel-max + 1, §2.7.1); default 32, at most 65536
	MaxLinks         int               // links per session (handle-max + 1, §2.7.2); default 64
	IdleTimeout      time.Duration     // a peer that sends nothing for this long is closed (§2.4.5); default 60s; negative disables
	HandshakeTimeout time.Duration     // time to finish protocol header, SASL and open; default 10s
	MaxMessageSize   uint64            // largest message accepted; default 1 MiB
	Credit           uint32            // link credit kept open per link; default 256
	MaxConnections   int               // total device connections; default 1000
	MaxConnsPerHost  int               // connections from one source address; default 0 (no limit)
	AllowAnonymous   bool              // ANONYMOUS SASL and connections without SASL
	Users            map[string]string // SASL PLAIN users: name → credential hash (package credential)
	// AnonymousNetworks limits anonymous devices to these source networks; empty: any.
	AnonymousNetworks []netip.Prefix
	// Targets limits, per user ("" for anonymous devices), the target addresses a device
	// may attach to: exact addresses and prefixes ending in "*". A user without an
	// entry may send anywhere.
	Targets map[string][]string
	// CommandAccess lists, per user ("" for anonymous devices), the device ids whose
	// commands a device may receive besides its own (exact ids and prefixes ending in
	// "*"); an anonymous device without an entry may receive any id's (see send.go).
	CommandAccess map[string][]string
}

func (c *Config) setDefaults() {
	if c.ContainerID == "" {
		c.ContainerID = "shadowgw"
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = 65536
	}
	if c.MaxFrameSize < 512 {
		c.MaxFrameSize = 512
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 32
	}
	c.MaxSessions = min(c.MaxSessions, 65536)
	if c.MaxLinks <= 0 {
		c.MaxLinks = 64
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 1 << 20
	}
	if c.Credit == 0 {
		c.Credit = 256
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 1000
	}
}

// fullError is how a Sink says it has no room: an error in the chain has a method Full
// that reports true (the store's ErrFull has). Devices are told
// amqp:resource-limit-exceeded.
type fullError interface{ Full() bool }

// isFull reports whether err says that the Sink has no room.
func isFull(err error) bool {
	var fe fullError
	return errors.As(err, &fe) && fe.Full()
}

// Delivery is a complete message received from a device.
type Delivery struct {
	Address  string       // the link's target address
	Source   string       // the SASL user, or the container-id of an anonymous device
	Payload  []byte       // the message's sections exactly as the device sent them
	Received time.Time    // when its last frame arrived
	Info     message.Info // fields read from the message
}

// channelMax and handleMax are the highest channel and handle numbers announced.
func (c *Config) channelMax() uint16 { return uint16(c.MaxSessions - 1) }
func (c *Config) handleMax() uint32  { return uint32(c.MaxLinks - 1) }

// Sink stores deliveries. Store must not block for long: it queues d and calls done
// exactly once, from any goroutine, when d is durable (err == nil) or could not be stored.
// done never blocks.
type Sink interface {
	Store(d *Delivery, done func(error))
}

// A Sink that also implements Pressure is asked before the server grants link credit:
// while Full(address) is true for a link's target address, the device gets no new credit
// on that link (backpressure, never silent loss), and it gets it again as soon as Room
// signals that Full may have turned false. Links to other addresses (another route of
// the store, say alarms while telemetry is full) keep their credit. Full must be cheap.
type Pressure interface {
	Full(address string) bool
	// Room returns a channel that receives a value whenever Full turned false for some
	// address, and a function the server calls when it no longer watches. The server
	// never polls: a Sink that has room again must signal it here.
	Room() (room <-chan struct{}, stop func())
}

// Stats are the server's counters.
type Stats struct {
	Connections      int64 // open now
	ConnectionsTotal uint64
	Refused          uint64 // connections refused by limits or authentication
	Messages         uint64 // messages stored
	Bytes            uint64 // payload bytes stored
	Rejected         uint64 // messages answered rejected (malformed, not storable)
	Dropped          uint64 // pre-settled messages that could not be stored (or forwarded, on a direct route)
	DirectAccepted   uint64 // messages of direct routes the cloud accepted
}

// Server is the device-facing AMQP 1.0 server. It is safe for concurrent use.
type Server struct {
	cfg  Config
	sink Sink
	log  *slog.Logger

	access atomic.Pointer[access] // set by SetAccess; nil: cfg.Users and cfg.Targets

	mu     sync.Mutex
	conns  map[*conn]struct{}
	byHost map[string]int

	wg     sync.WaitGroup
	nextID atomic.Uint64

	// Warnings a device can trigger per message or per attempt are rate-limited.
	logRefused, logMalformed, logNotStored, logDropped lograte.Limiter

	direct    Direct      // nil: every address goes to the Sink (see SetDirect)
	pressure  Pressure    // nil if the Sink does not implement Pressure
	pressured atomic.Bool // a link asked the Sink whether it is full since the last Room signal
	withheld  atomic.Bool // credit is withheld on some link, for logging the transitions

	open             atomic.Int64
	connectionsTotal atomic.Uint64
	refused          atomic.Uint64
	messages         atomic.Uint64
	bytes            atomic.Uint64
	rejected         atomic.Uint64
	dropped          atomic.Uint64
	directAccepted   atomic.Uint64

	// The sending side (send.go).
	commands                                   Commands                     // nil: devices cannot receive
	onCommandReceiver                          func(device string, up bool) // presence; may be nil
	cmdSent, cmdAccepted, cmdDead, cmdReleased atomic.Uint64
	// Direct command links (send_direct.go).
	directCmds                                             DirectCommands       // nil: every device's commands are stored
	cmdClaims                                              map[string]*cmdClaim // under mu: each device's command receiver (send_owner.go)
	dcSent, dcAccepted, dcRejected, dcReleased, dcModified atomic.Uint64
	dcInFlight                                             atomic.Int64
}

// SetCommands gives the server the source of the commands devices receive and,
// optionally, a function told when a device's command receiver attaches (up) and goes
// away; it is called on a connection's goroutine and must not block. Call it before
// Serve.
func (s *Server) SetCommands(c Commands, presence func(device string, up bool)) {
	s.commands, s.onCommandReceiver = c, presence
}

// CommandStats are the sending side's counters.
type CommandStats struct {
	Sent         uint64 // deliveries sent to devices (including sent again)
	Accepted     uint64
	DeadLettered uint64 // rejected or undeliverable-here
	Released     uint64 // released (or modified without failure): sent again
}

// CommandStats returns the sending side's counters.
func (s *Server) CommandStats() CommandStats {
	return CommandStats{Sent: s.cmdSent.Load(), Accepted: s.cmdAccepted.Load(),
		DeadLettered: s.cmdDead.Load(), Released: s.cmdReleased.Load()}
}

// New returns a Server that hands messages to sink. log may be nil.
func New(cfg Config, sink Sink, log *slog.Logger) *Server {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &Server{
		cfg:    cfg,
		sink:   sink,
		log:    log.With("component", "edge"),
		conns:  make(map[*conn]struct{}),
		byHost: make(map[string]int),
	}
	srv.pressure, _ = sink.(Pressure)
	return srv
}

// full reports whether the Sink has no room for messages to address. It marks the server
// pressured before it asks, so that a Room signal that comes after the answer always
// finds the mark and gives the link another chance (no lost wake-up).
func (s *Server) full(address string) bool {
	if s.pressure == nil {
		return false
	}
	if !s.pressured.Load() {
		s.pressured.Store(true)
	}
	if !s.pressure.Full(address) {
		return false
	}
	if !s.withheld.Swap(true) {
		s.log.Warn("store full: devices sending to full routes get no new credit until there is room")
	}
	return true
}

// watchPressure waits for the Sink's Room signal and then has every connection
// reconsider the credit of every link, so that links whose address has room again get
// it. Links still full withhold it again.
func (s *Server) watchPressure(ctx context.Context, room <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-room:
		}
		if !s.pressured.Swap(false) {
			continue
		}
		if s.withheld.Swap(false) {
			s.log.Info("store has room again: granting credit")
		}
		s.mu.Lock()
		for c := range s.conns {
			c.resume()
		}
		s.mu.Unlock()
	}
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:      s.open.Load(),
		ConnectionsTotal: s.connectionsTotal.Load(),
		Refused:          s.refused.Load(),
		Messages:         s.messages.Load(),
		Bytes:            s.bytes.Load(),
		Rejected:         s.rejected.Load(),
		Dropped:          s.dropped.Load(),
		DirectAccepted:   s.directAccepted.Load(),
	}
}

// Serve accepts device connections on ln until ctx is done, then closes ln, asks every
// connection to finish (acknowledging what the Sink completes within a grace period) and
// returns once all connection goroutines have exited. It returns nil after a
// cancellation and the accept error otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if s.pressure != nil {
		// Watch before the first connection can find the Sink full, so that no Room
		// signal is missed.
		room, stopRoom := s.pressure.Room()
		wctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		defer func() {
			cancel()
			<-watched
			stopRoom()
		}()
		go func() {
			defer close(watched)
			s.watchPressure(wctx, room)
		}()
	}
	if s.direct != nil {
		changed, stopChanged := s.direct.Changed()
		wctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		defer func() {
			cancel()
			<-watched
			stopChanged()
		}()
		go func() {
			defer close(watched)
			s.watchDirect(wctx, changed)
		}()
	}
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
			err = fmt.Errorf("edge: accept: %w", err)
			break
		}
		tempDelay = 0
		s.start(ctx, nc)
	}
	s.wg.Wait()
	return err
}

func (s *Server) start(ctx context.Context, nc net.Conn) {
	host, _, _ := net.SplitHostPort(nc.RemoteAddr().String())
	s.mu.Lock()
	if len(s.conns) >= s.cfg.MaxConnections || (s.cfg.MaxConnsPerHost > 0 && s.byHost[host] >= s.cfg.MaxConnsPerHost) {
		s.mu.Unlock()
		s.refused.Add(1)
		s.logRefused.Warn(s.log, "connection refused: limit reached", "remote", nc.RemoteAddr().String(),
			"connections", s.open.Load(), "max", s.cfg.MaxConnections, "per_host_max", s.cfg.MaxConnsPerHost)
		nc.Close()
		return
	}
	c := newConn(s, nc, s.nextID.Add(1))
	s.conns[c] = struct{}{}
	s.byHost[host]++
	s.mu.Unlock()
	s.open.Add(1)
	s.connectionsTotal.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.serve(ctx)
		s.mu.Lock()
		delete(s.conns, c)
		if s.byHost[host]--; s.byHost[host] <= 0 {
			delete(s.byHost, host)
		}
		s.mu.Unlock()
		s.open.Add(-1)
	}()
}
