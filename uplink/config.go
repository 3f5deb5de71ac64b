package uplink

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Defaults for Config.
const (
	DefaultInFlight         = 512
	DefaultMaxLinks         = 64
	DefaultIdleTimeout      = 60 * time.Second
	DefaultDialTimeout      = 30 * time.Second
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = time.Minute
	DefaultRetryDelay       = 5 * time.Second
	DefaultStallTimeout     = 2 * time.Minute
	DefaultContainerID      = "shadowgw"
	DefaultTargetDurability = "configuration"
	DefaultProbeInterval    = 30 * time.Second
	DefaultCredentialCheck  = 5 * time.Second
)

// Config configures an Uplink. The zero value of every field but URL, User and
// PasswordFile means its default.
type Config struct {
	// URL is the cloud broker, "amqps://host[:port]" (port 5671 by default), or a
	// comma-separated list of them, the preferred one first: on a failure the uplink
	// moves to the next, and while it uses a fallback it probes the preferred one every
	// PreferredProbeInterval and moves back once it answers. Only amqps is accepted,
	// and no user information.
	URL string
	// CAFile is a PEM file of the CAs trusted to sign the broker's certificate; empty
	// means the system's roots. It is read at every connection attempt, so a fixed
	// file takes effect without a restart.
	CAFile string
	// ServerName is the name the broker's certificate must carry; default the URL's
	// host. Verification is always on; TLS 1.2 is the minimum.
	ServerName string
	// CertFile and KeyFile are the PEM client certificate and its key for mutual TLS;
	// both or neither. They are read at every connection attempt, and a change on disk
	// while connected makes the uplink reconnect gracefully (see CredentialCheck).
	CertFile, KeyFile string
	// User is the SASL PLAIN user name. Empty means SASL EXTERNAL (the broker takes the
	// identity from the client certificate) when CertFile is set, else SASL ANONYMOUS.
	User string
	// PasswordFile holds the SASL PLAIN password (trailing CR and LF are ignored). It is
	// read at every connection attempt and never logged. Required with User.
	PasswordFile string
	// Commands is the cloud source address of commands for devices (receiver.go), e.g.
	// "/queue/gw-17-commands" on RabbitMQ or "command" on Hono; empty: none.
	Commands string
	// AddressPrefix is prepended to a message's stored address to form the cloud's
	// target address: with "/queue/", a device's "telemetry" goes to RabbitMQ's
	// "/queue/telemetry". Default "".
	AddressPrefix string
	// AddressTemplate, if set, makes the part of the cloud address after
	// AddressPrefix from the message's address and sender; see AddressTemplate
	// (the type). Default "": the stored address.
	AddressTemplate string
	// SourceAnnotation is the message-annotations key (a symbol beginning with
	// "x-opt-") under which each forwarded message carries who sent it to the
	// gateway; default SourceAnnotation. NoSourceAnnotation leaves it out (see
	// CheckSourceAnnotation).
	SourceAnnotation string
	// TargetDurability is the terminus durability requested for each target (AMQP 1.0
	// §3.5.3): "none", "configuration" (the default) or "unsettled-state". RabbitMQ
	// declares the queue of a "/queue/NAME" target durable unless it is "none", and
	// refuses the link if an existing queue's durability differs.
	TargetDurability string
	// InFlight is how many messages may be sent and awaiting the cloud's outcome at
	// once, across all targets; a message waiting for link credit counts, and one
	// larger than 32 KiB counts once more for each 32 KiB (see tokenBytes). Default
	// DefaultInFlight: a wider window lets more transfers share a TLS record and a
	// write, and more outcomes a wake-up (512 costs the gateway 6–10% less CPU per
	// message than 256 did, with RabbitMQ 3.10; 1,024 a little less again, but
	// RabbitMQ then spends more per durable message).
	InFlight int
	// MaxLinks caps the number of sender links (one per target address) kept open;
	// when more targets need one, the others are sent first, then the uplink waits
	// for the outcomes in flight and closes all links. Default DefaultMaxLinks.
	MaxLinks int
	// ContainerID is the AMQP container-id sent in open; default DefaultContainerID.
	ContainerID string
	// IdleTimeout is the idle-time-out announced in open: the broker must send a frame
	// at least this often or the connection is considered dead. Default
	// DefaultIdleTimeout; negative disables it.
	IdleTimeout time.Duration
	// DialTimeout bounds one connection attempt: TCP, TLS, SASL, open and begin, and
	// each link attach. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay between failed connection attempts,
	// which doubles per failure, with jitter. Defaults DefaultBackoffMin and
	// DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
	// RetryDelay is how long the uplink waits before sending messages again that the
	// cloud released or modified (AMQP 1.0 §3.4.4, §3.4.5). Default DefaultRetryDelay.
	RetryDelay time.Duration
	// StallTimeout is how long a message may wait for link credit from the cloud
	// before its address is held (see HeldAddress), or for its outcome before the
	// connection is considered stuck and replaced; the message is then sent again.
	// Default DefaultStallTimeout.
	StallTimeout time.Duration
	// RateLimit caps forwarding at this many messages per second, RateLimitBytes at
	// this many encoded bytes per second (a token bucket holding one second's worth);
	// 0 means no limit. They protect the cloud while a backlog drains.
	RateLimit      float64
	RateLimitBytes int
	// PreferredProbeInterval is how often, while connected to a fallback URL, the
	// preferred (first) URL is tried with a TLS and SASL handshake; default
	// DefaultProbeInterval, negative disables probing.
	PreferredProbeInterval time.Duration
	// CredentialCheck is how often the CA, certificate and key files are checked
	// (modification time and size) while connected; a change closes the connection
	// after the outcomes in flight arrived, and the next one uses the new files.
	// Default DefaultCredentialCheck; negative disables the check.
	CredentialCheck time.Duration
}

// withDefaults returns c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.TargetDurability == "" {
		c.TargetDurability = DefaultTargetDurability
	}
	if c.SourceAnnotation == "" {
		c.SourceAnnotation = SourceAnnotation
	}
	if c.InFlight <= 0 {
		c.InFlight = DefaultInFlight
	}
	if c.MaxLinks <= 0 {
		c.MaxLinks = DefaultMaxLinks
	}
	if c.ContainerID == "" {
		c.ContainerID = DefaultContainerID
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.PreferredProbeInterval == 0 {
		c.PreferredProbeInterval = DefaultProbeInterval
	}
	if c.CredentialCheck == 0 {
		c.CredentialCheck = DefaultCredentialCheck
	}
	return c
}

// Validate checks c without touching the network or the files; the files are read at
// each connection attempt. Errors name the field and wrap ErrConfig.
func (c Config) Validate() error {
	if _, err := c.endpoints(); err != nil {
		return err
	}
	if c.User != "" && c.PasswordFile == "" {
		return configErr("PasswordFile", "is empty (required with User)")
	}
	if c.User == "" && c.PasswordFile != "" {
		return configErr("User", "is empty (required with PasswordFile)")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return configErr("KeyFile", "CertFile and KeyFile go together")
	}
	if c.RateLimit < 0 {
		return configErr("RateLimit", "is negative")
	}
	if c.RateLimitBytes < 0 {
		return configErr("RateLimitBytes", "is negative")
	}
	if _, err := c.withDefaults().durability(); err != nil {
		return err
	}
	if _, err := ParseAddressTemplate(c.AddressTemplate); err != nil {
		return configErr("AddressTemplate", err.Error())
	}
	if err := CheckSourceAnnotation(c.SourceAnnotation); err != nil {
		return configErr("SourceAnnotation", err.Error())
	}
	return nil
}

// sourceKey returns the message-annotations key of the source, "" for none, of a
// Config with defaults.
func (c *Config) sourceKey() string {
	if c.SourceAnnotation == NoSourceAnnotation {
		return ""
	}
	return c.SourceAnnotation
}

// endpoint is one cloud broker of Config.URL.
type endpoint struct {
	addr       string // host:port
	serverName string // the name its certificate must carry
}

// endpoints parses URL, a comma-separated list, in order.
func (c Config) endpoints() ([]endpoint, error) {
	var eps []endpoint
	for raw := range strings.SplitSeq(c.URL, ",") {
		raw = strings.TrimSpace(raw)
		addr, err := parseURL(raw)
		if err != nil {
			return nil, err
		}
		name := c.ServerName
		if name == "" {
			u, _ := url.Parse(raw)
			name = u.Hostname()
		}
		eps = append(eps, endpoint{addr: addr, serverName: name})
	}
	return eps, nil
}

// parseURL checks one amqps URL and returns "host:port".
func parseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", configErr("URL", err.Error())
	}
	switch {
	case u.Scheme != "amqps":
		return "", configErr("URL", fmt.Sprintf("scheme must be amqps, got %q", u.Scheme))
	case u.User != nil:
		return "", configErr("URL", "must not contain user information; use User and PasswordFile")
	case u.Hostname() == "":
		return "", configErr("URL", "has no host")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return "", configErr("URL", "must be amqps://host[:port] without path or query")
	}
	port := u.Port()
	if port == "" {
		port = "5671"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

func (c Config) durability() (amqp.Durability, error) {
	switch c.TargetDurability {
	case "none":
		return amqp.DurabilityNone, nil
	case "configuration":
		return amqp.DurabilityConfiguration, nil
	case "unsettled-state":
		return amqp.DurabilityUnsettledState, nil
	}
	return 0, configErr("TargetDurability", fmt.Sprintf("must be none, configuration or unsettled-state, got %q", c.TargetDurability))
}

func configErr(field, msg string) error {
	return fmt.Errorf("uplink: config field %s: %s: %w", field, msg, ErrConfig)
}

// LogValue describes c for logs: the password file's path, never its content.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.String("ca_file", c.CAFile),
		slog.String("cert_file", c.CertFile),
		slog.String("server_name", c.ServerName),
		slog.String("user", c.User),
		slog.String("password_file", c.PasswordFile),
		slog.String("address_prefix", c.AddressPrefix),
		slog.String("address_template", c.AddressTemplate),
		slog.String("source_annotation", c.SourceAnnotation),
		slog.Int("in_flight", c.InFlight),
	)
}

// mechanism names the SASL mechanism c uses.
func (c Config) mechanism() string {
	switch {
	case c.User != "":
		return "PLAIN"
	case c.CertFile != "":
		return "EXTERNAL"
	}
	return "ANONYMOUS"
}

// connOptions reads the CA, certificate, key and password files and returns the
// options for one connection attempt, and the SHA-256 fingerprint of the client
// certificate ("" without one), for the log.
func (c Config) connOptions(serverName string) (*amqp.ConnOptions, string, error) {
	tc := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, "", fmt.Errorf("read CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("CA file %s: no PEM certificate found", c.CAFile)
		}
	}
	var fingerprint string
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
		sum := sha256.Sum256(cert.Certificate[0])
		fingerprint = hex.EncodeToString(sum[:])
	}
	var sasl amqp.SASLType
	switch c.mechanism() {
	case "PLAIN":
		pw, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, "", fmt.Errorf("read password file: %w", err)
		}
		sasl = amqp.SASLTypePlain(c.User, strings.TrimRight(string(pw), "\r\n"))
	case "EXTERNAL":
		sasl = amqp.SASLTypeExternal("")
	default:
		sasl = amqp.SASLTypeAnonymous()
	}
	return &amqp.ConnOptions{
		ContainerID: c.ContainerID,
		HostName:    serverName,
		IdleTimeout: c.IdleTimeout,
		SASLType:    sasl,
		TLSConfig:   tc,
		// A write that blocks this long means the network is gone.
		WriteTimeout: c.DialTimeout,
	}, fingerprint, nil
}
