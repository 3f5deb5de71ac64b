package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"time"

	"github.com/shadowgw/shadowgw/uplink"
)

// Config is the gateway's configuration. Its values come from Default, overlaid by the
// configuration file (Load) and then by command-line flags (Flags.Apply); Validate checks
// the result. A Config remembers where each value came from so that problems found later
// still name the file and line, or the flag.
//
// A Config is a plain value. Copies share that bookkeeping, which is never modified in
// place, so copies may be used independently; none of its methods modify it.
type Config struct {
	Edge     Edge
	Store    Store
	Uplink   Uplink
	Devices  []Device // one per [device "NAME"] section, in file order
	Inputs   []Input  // one per [input "NAME"] section, in file order
	Routes   []Route  // one per [route "NAME"] section, in file order
	Log      Log
	Metrics  Metrics
	MQTT     MQTT     // [mqtt], see mqtt.go
	Commands Commands // [commands], see commands.go

	file    string            // configuration file the values were read from, or ""
	origins map[string]origin // where values came from, by key (see key)
}

// Edge configures the device-facing AMQP 1.0 server: section [edge].
type Edge struct {
	// Listen is the TCP address to accept devices on, host:port (listen). An empty host
	// means every address.
	Listen string

	// AllowAnonymous lets a device connect without a user name and password
	// (allow-anonymous).
	AllowAnonymous bool

	// AnonymousNetworks limits anonymous devices to these source networks; empty means
	// any (anonymous-networks, a comma-separated list like 192.168.1.0/24, 10.0.0.7).
	AnonymousNetworks []netip.Prefix

	// AnonymousTargets are the target addresses anonymous devices may send to: exact
	// addresses and prefixes ending in "*"; empty means any (anonymous-targets).
	AnonymousTargets []string

	// MaxFrameSize is the largest frame accepted from a device, in bytes, announced in
	// the open performative (max-frame-size).
	MaxFrameSize uint32

	// IdleTimeout is the idle-time-out announced in open: a device that sends nothing
	// for this long is disconnected. 0 disables it (idle-timeout).
	IdleTimeout time.Duration

	// MaxMessageSize is the largest message accepted from a device, in bytes, announced
	// on each link (max-message-size).
	MaxMessageSize uint64

	// Credit is the link credit granted to each sending device: how many messages it
	// may send before the gateway grants more (credit).
	Credit uint32

	// MaxConnections is the most device connections at once (max-connections);
	// MaxConnectionsPerHost the most from one source address, 0 for no limit
	// (max-connections-per-host). Connections beyond them are closed at once.
	MaxConnections, MaxConnectionsPerHost int

	// MaxSessions is the most sessions per connection (max-sessions, announced as
	// channel-max + 1) and MaxLinks the most links per session (max-links, announced as
	// handle-max + 1).
	MaxSessions, MaxLinks int

	// HandshakeTimeout is the time a device has from connecting to finishing the
	// protocol header, SASL and open exchange; a device that says nothing, or trickles
	// bytes, is dropped after it (handshake-timeout).
	HandshakeTimeout time.Duration
}

// Store configures the durable message store: section [store].
type Store struct {
	// Dir is the data directory (dir). A relative path in a configuration file is
	// relative to that file's directory; elsewhere, to the working directory.
	Dir string

	// MaxBatch is the largest number of writes committed in one transaction
	// (max-batch).
	MaxBatch int

	// MaxDelay is how long a write may wait for others to share its transaction; 0
	// commits at once (max-delay).
	MaxDelay time.Duration

	// MaxBytes is the budget of queued payload bytes; 0 means none (max-bytes).
	MaxBytes uint64

	// MaxMessages is the budget of queued messages; 0 means none (max-messages).
	MaxMessages uint64

	// MinFree is how many bytes of the data directory's file system stay free
	// whatever the budgets say; 0 disables the guard (min-free).
	MinFree uint64

	// WhenFull is what happens when a budget or min-free is reached:
	// "backpressure" (devices get no credit) or "drop-oldest" (when-full).
	WhenFull string

	// DefaultTTL is the time to live of messages that carry no ttl or
	// absolute-expiry-time of their own; 0 means they never expire (default-ttl).
	DefaultTTL time.Duration
}

// Uplink configures the connection to the cloud broker: section [uplink].
type Uplink struct {
	// URL is the broker, amqps://HOST[:PORT], port 5671 by default (url). Empty means no
	// uplink: the gateway only buffers.
	URL string

	// CA is a PEM file of the certificates that may sign the broker's certificate (ca).
	// Empty means the system's roots.
	CA string

	// ServerName is the name the broker's certificate must be valid for (server-name).
	// Empty means the host of URL; see TLSServerName.
	ServerName string

	// User is the SASL PLAIN user name (user). Empty means no credentials are sent.
	User string

	// PasswordFile holds the password for User, on its first line (password-file). The
	// password itself is never in the configuration file; see UplinkPassword.
	PasswordFile string

	// AddressPrefix is put in front of a device's target address to make the broker
	// address, for example "/queue/" for RabbitMQ (address-prefix).
	AddressPrefix string

	// AddressTemplate makes the rest of the broker address, after AddressPrefix, from
	// the device's target address and identity, e.g. "telemetry/mytenant/{device}"
	// (address-template); see uplink.AddressTemplate. Empty means "{address}".
	AddressTemplate string
	// SourceAnnotation is the message-annotations key under which every forwarded
	// message carries who sent it to the gateway (source-annotation): a symbol
	// beginning with x-opt-, or "none" to leave it out. Default
	// x-opt-shadowgw-source; see uplink.CheckSourceAnnotation.
	SourceAnnotation string
	// Commands is the cloud source address of commands for devices (commands); empty:
	// none. See [commands].
	Commands string

	// InFlight is the largest number of messages sent to the broker and not yet settled
	// (in-flight).
	InFlight int

	// ReconnectMin and ReconnectMax bound the delay between failed connection attempts,
	// which doubles per failure with jitter (reconnect-min, reconnect-max).
	ReconnectMin, ReconnectMax time.Duration
	// FallbackURLs are further brokers, amqps://HOST[:PORT], tried in order when URL
	// fails (fallback-urls, comma-separated). While on a fallback the uplink probes URL
	// every PreferredProbeInterval and moves back once it answers.
	FallbackURLs []string

	// PreferredProbeInterval is how often URL is probed while a fallback is in use
	// (preferred-probe-interval); 0 means the uplink's default (30s).
	PreferredProbeInterval time.Duration

	// CertFile and KeyFile are a PEM client certificate and its key for mutual TLS
	// (cert-file, key-file). With them and no user, the uplink logs in with SASL
	// EXTERNAL; with neither user nor certificate, with SASL ANONYMOUS. A change of these
	// files or of ca is picked up by a graceful reconnect, without a restart.
	CertFile, KeyFile string

	// RateLimit caps forwarding in messages per second, RateLimitBytes in bytes per
	// second (rate-limit, rate-limit-bytes); 0 means no limit.
	RateLimit      int
	RateLimitBytes uint64
}

// Device is a device allowed to connect with a user name and password: one
// [device "NAME"] section.
type Device struct {
	// Name is the user name the device authenticates with (the section name).
	Name string

	// PasswordHash is the device's password hash from `shadowgw passwd`, in the format of
	// package credential (password-hash). It is redacted by String and LogValue.
	PasswordHash string

	// Targets are the target addresses the device may send to: exact addresses and
	// prefixes ending in "*"; empty means any (targets).
	Targets []string
}

// Log configures logging: section [log].
type Log struct {
	// Level is the lowest level logged: debug, info, warn or error (level).
	Level string
}

// Metrics configures the local HTTP endpoint for metrics, health and status: section
// [metrics].
type Metrics struct {
	// Listen is the TCP address of the HTTP server that serves /metrics (Prometheus),
	// /healthz, /readyz and /status (read by `shadowgw status`), host:port (listen). Empty
	// turns it off.
	Listen string
}

// DefaultUplinkPort is the port of an uplink URL that has none: AMQP over TLS,
// SECURE-PORT in the AMQP 1.0 transport definitions.
const DefaultUplinkPort = "5671"

// Default returns the embedded defaults: devices on 127.0.0.1:5672 without credentials,
// data in ./shadowgw-data relative to the working directory, no uplink.
func Default() Config {
	return Config{
		Edge: Edge{
			Listen:           "127.0.0.1:5672",
			AllowAnonymous:   true,
			MaxFrameSize:     65536,
			IdleTimeout:      60 * time.Second,
			MaxMessageSize:   1 << 20,
			Credit:           256,
			MaxConnections:   1000,
			MaxSessions:      32,
			MaxLinks:         64,
			HandshakeTimeout: 10 * time.Second,
		},
		Store: Store{
			Dir:      "./shadowgw-data",
			MaxBatch: 4096,
			MaxDelay: 0,
			MinFree:  64 << 20,
			WhenFull: "backpressure",
		},
		Uplink: Uplink{
			SourceAnnotation: uplink.SourceAnnotation,
			InFlight:         uplink.DefaultInFlight,
			ReconnectMin:     time.Second,
			ReconnectMax:     time.Minute,
		},
		Log:      Log{Level: "info"},
		Metrics:  Metrics{Listen: "127.0.0.1:9464"},
		MQTT:     defaultMQTT(),
		Commands: defaultCommands(),
	}
}

// Check returns the configuration the gateway runs with: Default, overlaid by the file at
// path (none when path is ""), then by overrides, then validated. Syntax and validation
// problems are reported together as Errors; a file that cannot be read is reported alone.
func Check(path string, overrides Flags) (Config, error) {
	c := Default()
	var errs Errors
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		c, errs = parse(path, data)
	}
	overrides.Apply(&c)
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		sortErrors(errs)
		return Config{}, errs
	}
	return c, nil
}

// File returns the configuration file the values were read from, or "" for none.
func (c Config) File() string { return c.file }

// Enabled reports whether an uplink is configured.
func (u Uplink) Enabled() bool { return u.URL != "" }

// Addr returns the broker's host:port, with DefaultUplinkPort when URL has no port, or ""
// when URL is empty or not a valid URL.
func (u Uplink) Addr() string {
	p, err := url.Parse(u.URL)
	if u.URL == "" || err != nil || p.Hostname() == "" {
		return ""
	}
	port := p.Port()
	if port == "" {
		port = DefaultUplinkPort
	}
	return net.JoinHostPort(p.Hostname(), port)
}

// TLSServerName returns the name the broker's certificate must be valid for: ServerName,
// or else the host of URL.
func (u Uplink) TLSServerName() string {
	if u.ServerName != "" {
		return u.ServerName
	}
	p, err := url.Parse(u.URL)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

// SlogLevel returns Level as a slog.Level; an invalid Level (which Validate rejects)
// gives slog.LevelInfo.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// origin records where a value came from.
type origin struct {
	line     int    // line in Config.file, or 0
	flag     string // flag that supplied the value, or ""
	rejected bool   // the parser reported the value as malformed and kept the default
}

// key names a value in Config.origins: "SECTION.FIELD" ("edge.listen"), and for devices,
// inputs and routes, which are identified by their index in Devices, Inputs or Routes,
// "device.I" for the section header and "device.I.FIELD" (inputKey: "input.I",
// "input.I.FIELD"; routeKey: "route.I", "route.I.FIELD").
func key(section, field string) string {
	if field == "" {
		return section
	}
	return section + "." + field
}

func deviceKey(i int, field string) string {
	return key(fmt.Sprintf("%s.%d", deviceSection, i), field)
}

// deviceDisplay returns a device's section as written in errors: device "NAME".
func deviceDisplay(name string) string {
	return fmt.Sprintf("%s %q", deviceSection, name)
}

// cloneOrigins returns a copy of c's origins that may be modified.
func (c *Config) cloneOrigins() map[string]origin {
	if c.origins == nil {
		return make(map[string]origin)
	}
	return maps.Clone(c.origins)
}

// problem returns an Error about a value, located where the value at key came from.
func (c *Config) problem(section, field, key string, err error, format string, args ...any) *Error {
	e := &Error{Section: section, Field: field, Msg: fmt.Sprintf(format, args...), Err: err}
	o := c.origins[key]
	if o.flag != "" {
		e.Flag = o.flag
		return e
	}
	e.File = c.file
	e.Line = o.line
	return e
}
