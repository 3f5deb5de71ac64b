package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/edge/credential"
)

// Limits checked by Validate.
const (
	// minFrameSize is MIN-MAX-FRAME-SIZE, AMQP 1.0 part 2 §2.7.1 (open): no peer may
	// announce a smaller max-frame-size.
	minFrameSize = 512

	// maxMessageSize bounds max-message-size: a message is held in memory while it
	// arrives and is written to the store in one transaction, and a Pi has at most a few
	// GiB of memory (512 MiB on a Zero).
	maxMessageSize = 256 << 20

	maxIdleTimeout = 24 * time.Hour
	maxCount       = 65536 // credit, max-batch, in-flight
	maxBatchDelay  = time.Second
	maxDeviceName  = 64
)

var logLevels = []string{"debug", "info", "warn", "error"}

// Validate checks the values and how they fit together: addresses, ranges, the uplink URL,
// that the CA and password files exist (the CA file must hold PEM certificates), unique
// device names and well-formed password hashes, the inputs (a known kind, only that kind's
// keys, no two reading the same chip or line), the routes (named once, addresses claimed
// by one route only, none on the default route), and the log level. It reports every
// problem as Errors; a value from the configuration file names its file and line, a value
// from a flag names the flag.
func (c *Config) Validate() error {
	errs := c.validate()
	sortErrors(errs)
	return errs.orNil()
}

func (c *Config) validate() Errors {
	var errs Errors
	add := func(e *Error) { errs = append(errs, e) }
	c.validateEdge(add)
	c.validateStore(add)
	c.validateUplink(add)
	c.validateDevices(add)
	c.validateInputs(add)
	c.validateRoutes(add)
	c.validateMetrics(add)
	c.validateMQTT(add)
	c.validateCommands(add)
	if !slices.Contains(logLevels, c.Log.Level) {
		add(c.problem("log", "level", "log.level", nil, "want one of %s, got %q", strings.Join(logLevels, ", "), c.Log.Level))
	}
	return errs
}

func (c *Config) validateEdge(add func(*Error)) {
	e := c.Edge
	at := func(field string, format string, args ...any) {
		add(c.problem("edge", field, key("edge", field), nil, format, args...))
	}
	if _, port, err := net.SplitHostPort(e.Listen); err != nil {
		at("listen", "want HOST:PORT, got %q", e.Listen)
	} else if !isPort(port, 0) {
		at("listen", "port must be a number from 0 to 65535, got %q", port)
	}
	if !e.AllowAnonymous && len(c.Devices) == 0 {
		at("allow-anonymous", "is false and there is no [device \"NAME\"] section: no device could connect")
	}
	if e.MaxFrameSize < minFrameSize {
		at("max-frame-size", "must be at least %d (AMQP 1.0 MIN-MAX-FRAME-SIZE), got %d", minFrameSize, e.MaxFrameSize)
	}
	if e.IdleTimeout != 0 && (e.IdleTimeout < time.Second || e.IdleTimeout > maxIdleTimeout) {
		at("idle-timeout", "must be 0 (off) or from 1s to %v, got %v", maxIdleTimeout, e.IdleTimeout)
	}
	if e.MaxMessageSize < 1 || e.MaxMessageSize > maxMessageSize {
		at("max-message-size", "must be from 1 to %d (%s), got %d", maxMessageSize, formatSize(maxMessageSize), e.MaxMessageSize)
	}
	if e.MaxConnections < 1 || e.MaxConnections > 100000 {
		at("max-connections", "must be from 1 to 100000, got %d", e.MaxConnections)
	}
	if e.MaxConnectionsPerHost < 0 || e.MaxConnectionsPerHost > e.MaxConnections {
		at("max-connections-per-host", "must be from 0 (no limit) to max-connections (%d), got %d", e.MaxConnections, e.MaxConnectionsPerHost)
	}
	if e.MaxSessions < 1 || e.MaxSessions > 65536 {
		at("max-sessions", "must be from 1 to 65536, got %d", e.MaxSessions)
	}
	if e.MaxLinks < 1 || e.MaxLinks > 65536 {
		at("max-links", "must be from 1 to 65536, got %d", e.MaxLinks)
	}
	if e.HandshakeTimeout < 100*time.Millisecond || e.HandshakeTimeout > 10*time.Minute {
		at("handshake-timeout", "must be from 100ms to 10m, got %v", e.HandshakeTimeout)
	}
	if e.Credit < 1 || e.Credit > maxCount {
		at("credit", "must be from 1 to %d, got %d", maxCount, e.Credit)
	}
}

func (c *Config) validateStore(add func(*Error)) {
	s := c.Store
	at := func(field string, err error, format string, args ...any) {
		add(c.problem("store", field, key("store", field), err, format, args...))
	}
	if s.Dir == "" {
		at("dir", nil, "must not be empty")
	} else if fi, err := os.Stat(s.Dir); err == nil && !fi.IsDir() {
		at("dir", nil, "%s is not a directory", s.Dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		at("dir", err, "")
	}
	if s.MaxBatch < 1 || s.MaxBatch > maxCount {
		at("max-batch", nil, "must be from 1 to %d, got %d", maxCount, s.MaxBatch)
	}
	if s.MaxDelay < 0 || s.MaxDelay > maxBatchDelay {
		at("max-delay", nil, "must be from 0s to %v, got %v", maxBatchDelay, s.MaxDelay)
	}
	if s.WhenFull != "backpressure" && s.WhenFull != "drop-oldest" {
		at("when-full", nil, "must be backpressure or drop-oldest, got %q", s.WhenFull)
	}
	if s.DefaultTTL < 0 {
		at("default-ttl", nil, "must not be negative, got %v", s.DefaultTTL)
	}
}

func (c *Config) validateUplink(add func(*Error)) {
	u := c.Uplink
	at := func(field string, err error, format string, args ...any) {
		add(c.problem("uplink", field, key("uplink", field), err, format, args...))
	}
	if u.InFlight < 1 || u.InFlight > maxCount {
		at("in-flight", nil, "must be from 1 to %d, got %d", maxCount, u.InFlight)
	}
	if u.ReconnectMin <= 0 || u.ReconnectMin > time.Hour {
		at("reconnect-min", nil, "must be from 1ns to 1h, got %v", u.ReconnectMin)
	}
	if u.ReconnectMax < u.ReconnectMin || u.ReconnectMax > 24*time.Hour {
		at("reconnect-max", nil, "must be from reconnect-min (%v) to 24h, got %v", u.ReconnectMin, u.ReconnectMax)
	}
	if strings.ContainsFunc(u.AddressPrefix, isControl) {
		at("address-prefix", nil, "contains a control character")
	}
	validateAddressTemplate(u.AddressTemplate, at)
	validateSourceAnnotation(u.SourceAnnotation, at)
	if !u.Enabled() {
		return // the other settings are unused; Warnings says so
	}
	if msg := checkURL(u.URL); msg != "" {
		at("url", nil, "%s", msg)
	}
	if u.CA != "" {
		if err := checkCA(u.CA); err != nil {
			at("ca", err, "")
		}
	}
	if u.ServerName != "" && !isHostName(u.ServerName) {
		at("server-name", nil, "want a host name or IP address, got %q", u.ServerName)
	}
	switch {
	case u.User != "" && u.PasswordFile == "":
		at("user", nil, "is set but password-file is not")
	case u.User == "" && u.PasswordFile != "":
		at("password-file", nil, "is set but user is not")
	case u.PasswordFile != "":
		if fi, err := os.Stat(u.PasswordFile); err != nil {
			at("password-file", err, "")
		} else if !fi.Mode().IsRegular() {
			at("password-file", nil, "%s is not a regular file", u.PasswordFile)
		}
	}
	if strings.ContainsFunc(u.User, isControl) {
		at("user", nil, "contains a control character")
	}
	for _, f := range u.FallbackURLs {
		if msg := checkURL(f); msg != "" {
			at("fallback-urls", nil, "%s: %s", f, msg)
		}
	}
	if u.PreferredProbeInterval < 0 {
		at("preferred-probe-interval", nil, "must not be negative, got %v", u.PreferredProbeInterval)
	}
	switch {
	case u.CertFile != "" && u.KeyFile == "":
		at("cert-file", nil, "is set but key-file is not")
	case u.CertFile == "" && u.KeyFile != "":
		at("key-file", nil, "is set but cert-file is not")
	}
	for _, f := range []struct{ field, path string }{{"cert-file", u.CertFile}, {"key-file", u.KeyFile}} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			at(f.field, err, "")
		} else if !fi.Mode().IsRegular() {
			at(f.field, nil, "%s is not a regular file", f.path)
		}
	}
}

func (c *Config) validateDevices(add func(*Error)) {
	first := make(map[string]int) // device name → index of its first section
	for i, d := range c.Devices {
		section := deviceDisplay(d.Name)
		at := func(field string, err error, format string, args ...any) {
			k := deviceKey(i, field)
			if _, ok := c.origins[k]; !ok {
				k = deviceKey(i, "") // a missing key: point at the section header
			}
			add(c.problem(section, field, k, err, format, args...))
		}
		if msg := checkDeviceName(d.Name); msg != "" {
			at("", nil, "%s", msg)
		}
		if j, dup := first[d.Name]; dup {
			if line := c.origins[deviceKey(j, "")].line; line > 0 {
				at("", nil, "duplicate device name (first defined on line %d)", line)
			} else {
				at("", nil, "duplicate device name")
			}
		} else {
			first[d.Name] = i
		}
		if d.PasswordHash == "" {
			at("password-hash", nil, "missing: set it to the output of `shadowgw passwd`")
		} else if err := credential.Parse(d.PasswordHash); err != nil {
			at("password-hash", err, "")
		}
	}
}

func (c *Config) validateMetrics(add func(*Error)) {
	l := c.Metrics.Listen
	if l == "" {
		return // off
	}
	if _, port, err := net.SplitHostPort(l); err != nil {
		add(c.problem("metrics", "listen", "metrics.listen", nil, "want HOST:PORT or empty (off), got %q", l))
	} else if !isPort(port, 0) {
		add(c.problem("metrics", "listen", "metrics.listen", nil, "port must be a number from 0 to 65535, got %q", port))
	}
}

// checkURL returns what is wrong with an uplink URL, or "".
func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, which may hold a password
		}
		return fmt.Sprintf("not a URL: %v", err)
	}
	switch {
	case u.Scheme != "amqps":
		return fmt.Sprintf("scheme must be amqps (TLS), got %q", u.Scheme)
	case u.User != nil:
		return "must not contain a user or password: set user and password-file instead"
	case u.Opaque != "" || u.Hostname() == "":
		return "missing host: want amqps://HOST[:PORT]"
	case u.Port() == "" && strings.HasSuffix(u.Host, ":"):
		return "empty port: want amqps://HOST[:PORT]"
	case u.Port() != "" && !isPort(u.Port(), 1):
		return fmt.Sprintf("port must be a number from 1 to 65535, got %q", u.Port())
	case u.Path != "" && u.Path != "/":
		return fmt.Sprintf("path %q is not supported: want amqps://HOST[:PORT] (see address-prefix)", u.Path)
	case u.RawQuery != "" || u.ForceQuery:
		return "query is not supported: want amqps://HOST[:PORT]"
	case u.Fragment != "":
		return "fragment is not supported: want amqps://HOST[:PORT]"
	}
	return ""
}

// checkCA checks that path holds one or more PEM certificates and nothing else.
func checkCA(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("%s: PEM block %d is a %s, want only CERTIFICATE blocks", path, n+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s: no PEM certificates", path)
	}
	return nil
}

// checkDeviceName returns what is wrong with a device name, or "".
func checkDeviceName(name string) string {
	if name == "" || len(name) > maxDeviceName {
		return fmt.Sprintf("device name must be 1 to %d characters", maxDeviceName)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-@", r)) {
			return fmt.Sprintf("device name may contain only letters, digits and . _ - @, got %q", r)
		}
	}
	return ""
}

// isPort reports whether s is a decimal port number from lo to 65535.
func isPort(s string, lo int) bool {
	n, err := strconv.Atoi(s)
	return err == nil && s[0] != '+' && s[0] != '-' && n >= lo && n <= 65535
}

// isHostName reports whether s looks like a DNS name or an IP address.
func isHostName(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
				return false
			}
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
