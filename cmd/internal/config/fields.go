package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// field is one key of a section: how to store a value read from the file and how to
// write it back.
type field struct {
	name   string
	isPath bool // a relative path is relative to the configuration file's directory
	set    func(c *Config, v string) error
	get    func(c *Config) string
}

// deviceField is one key of a [device "NAME"] section.
type deviceField struct {
	name string
	set  func(d *Device, v string) error
	get  func(d *Device) string
}

// sections lists the sections without a name, in the order String writes them, and their
// keys in order.
var sections = []struct {
	name   string
	fields []field
}{
	{"edge", []field{
		stringField("listen", func(c *Config) *string { return &c.Edge.Listen }),
		boolField("allow-anonymous", func(c *Config) *bool { return &c.Edge.AllowAnonymous }),
		sizeField("max-frame-size", math.MaxUint32, func(c *Config) uint64 { return uint64(c.Edge.MaxFrameSize) },
			func(c *Config, v uint64) { c.Edge.MaxFrameSize = uint32(v) }),
		durationField("idle-timeout", func(c *Config) *time.Duration { return &c.Edge.IdleTimeout }),
		sizeField("max-message-size", math.MaxUint64, func(c *Config) uint64 { return c.Edge.MaxMessageSize },
			func(c *Config, v uint64) { c.Edge.MaxMessageSize = v }),
		intField("credit", math.MaxUint32, func(c *Config) int64 { return int64(c.Edge.Credit) },
			func(c *Config, v int64) { c.Edge.Credit = uint32(v) }),
		intField("max-connections", math.MaxInt32, func(c *Config) int64 { return int64(c.Edge.MaxConnections) },
			func(c *Config, v int64) { c.Edge.MaxConnections = int(v) }),
		intField("max-connections-per-host", math.MaxInt32, func(c *Config) int64 { return int64(c.Edge.MaxConnectionsPerHost) },
			func(c *Config, v int64) { c.Edge.MaxConnectionsPerHost = int(v) }),
		intField("max-sessions", math.MaxUint16+1, func(c *Config) int64 { return int64(c.Edge.MaxSessions) },
			func(c *Config, v int64) { c.Edge.MaxSessions = int(v) }),
		intField("max-links", math.MaxUint32, func(c *Config) int64 { return int64(c.Edge.MaxLinks) },
			func(c *Config, v int64) { c.Edge.MaxLinks = int(v) }),
		durationField("handshake-timeout", func(c *Config) *time.Duration { return &c.Edge.HandshakeTimeout }),
		prefixListField("anonymous-networks", func(c *Config) *[]netip.Prefix { return &c.Edge.AnonymousNetworks }),
		{
			name: "anonymous-targets",
			set:  func(c *Config, v string) (err error) { c.Edge.AnonymousTargets, err = parseTargets(v); return err },
			get:  func(c *Config) string { return strings.Join(c.Edge.AnonymousTargets, ", ") },
		},
	}},
	{"store", []field{
		pathField("dir", func(c *Config) *string { return &c.Store.Dir }),
		intField("max-batch", math.MaxInt32, func(c *Config) int64 { return int64(c.Store.MaxBatch) },
			func(c *Config, v int64) { c.Store.MaxBatch = int(v) }),
		durationField("max-delay", func(c *Config) *time.Duration { return &c.Store.MaxDelay }),
		sizeField("max-bytes", math.MaxUint64, func(c *Config) uint64 { return c.Store.MaxBytes },
			func(c *Config, v uint64) { c.Store.MaxBytes = v }),
		intField("max-messages", math.MaxInt64, func(c *Config) int64 { return int64(c.Store.MaxMessages) },
			func(c *Config, v int64) { c.Store.MaxMessages = uint64(v) }),
		sizeField("min-free", math.MaxUint64, func(c *Config) uint64 { return c.Store.MinFree },
			func(c *Config, v uint64) { c.Store.MinFree = v }),
		stringField("when-full", func(c *Config) *string { return &c.Store.WhenFull }),
		durationField("default-ttl", func(c *Config) *time.Duration { return &c.Store.DefaultTTL }),
	}},
	{"uplink", []field{
		stringField("url", func(c *Config) *string { return &c.Uplink.URL }),
		pathField("ca", func(c *Config) *string { return &c.Uplink.CA }),
		stringField("server-name", func(c *Config) *string { return &c.Uplink.ServerName }),
		stringField("user", func(c *Config) *string { return &c.Uplink.User }),
		pathField("password-file", func(c *Config) *string { return &c.Uplink.PasswordFile }),
		stringField("address-prefix", func(c *Config) *string { return &c.Uplink.AddressPrefix }),
		stringField("address-template", func(c *Config) *string { return &c.Uplink.AddressTemplate }),
		stringField("source-annotation", func(c *Config) *string { return &c.Uplink.SourceAnnotation }),
		stringField("commands", func(c *Config) *string { return &c.Uplink.Commands }),
		intField("in-flight", math.MaxInt32, func(c *Config) int64 { return int64(c.Uplink.InFlight) },
			func(c *Config, v int64) { c.Uplink.InFlight = int(v) }),
		durationField("reconnect-min", func(c *Config) *time.Duration { return &c.Uplink.ReconnectMin }),
		durationField("reconnect-max", func(c *Config) *time.Duration { return &c.Uplink.ReconnectMax }),
		{
			name: "fallback-urls",
			set:  func(c *Config, v string) error { c.Uplink.FallbackURLs = splitList(v); return nil },
			get:  func(c *Config) string { return strings.Join(c.Uplink.FallbackURLs, ", ") },
		},
		durationField("preferred-probe-interval", func(c *Config) *time.Duration { return &c.Uplink.PreferredProbeInterval }),
		pathField("cert-file", func(c *Config) *string { return &c.Uplink.CertFile }),
		pathField("key-file", func(c *Config) *string { return &c.Uplink.KeyFile }),
		intField("rate-limit", math.MaxInt32, func(c *Config) int64 { return int64(c.Uplink.RateLimit) },
			func(c *Config, v int64) { c.Uplink.RateLimit = int(v) }),
		sizeField("rate-limit-bytes", math.MaxInt32, func(c *Config) uint64 { return c.Uplink.RateLimitBytes },
			func(c *Config, v uint64) { c.Uplink.RateLimitBytes = v }),
	}},
	{"log", []field{
		stringField("level", func(c *Config) *string { return &c.Log.Level }),
	}},
	{"metrics", []field{
		stringField("listen", func(c *Config) *string { return &c.Metrics.Listen }),
	}},
	{"mqtt", mqttFields()},
	{"commands", commandsFields()},
}

// deviceSection is the name of the repeated [device "NAME"] section.
const deviceSection = "device"

var deviceFields = []deviceField{
	{
		name: "password-hash",
		set:  func(d *Device, v string) error { d.PasswordHash = v; return nil },
		get:  func(d *Device) string { return d.PasswordHash },
	},
	{
		name: "targets",
		set:  func(d *Device, v string) (err error) { d.Targets, err = parseTargets(v); return err },
		get:  func(d *Device) string { return strings.Join(d.Targets, ", ") },
	},
}

// splitList splits a comma-separated value, dropping blanks around and empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseTargets parses a list of target addresses: exact addresses, or prefixes ending
// in "*".
func parseTargets(v string) ([]string, error) {
	list := splitList(v)
	for _, t := range list {
		if i := strings.IndexByte(t, '*'); i >= 0 && i != len(t)-1 {
			return nil, fmt.Errorf("%q: '*' may only end an address (a prefix)", t)
		}
	}
	return list, nil
}

// prefixListField is a comma-separated list of networks (CIDR, or a single address).
func prefixListField(name string, p func(*Config) *[]netip.Prefix) field {
	return field{
		name: name,
		set: func(c *Config, v string) error {
			var out []netip.Prefix
			for _, item := range splitList(v) {
				pfx, err := netip.ParsePrefix(item)
				if err != nil {
					addr, aerr := netip.ParseAddr(item)
					if aerr != nil {
						return fmt.Errorf("%q is not a network (like 192.168.1.0/24) or an address", item)
					}
					pfx = netip.PrefixFrom(addr, addr.BitLen())
				}
				out = append(out, pfx.Masked())
			}
			*p(c) = out
			return nil
		},
		get: func(c *Config) string {
			var items []string
			for _, pfx := range *p(c) {
				items = append(items, pfx.String())
			}
			return strings.Join(items, ", ")
		},
	}
}

// misplaced explains keys that people are likely to try and that must not exist.
var misplaced = map[string]string{
	"uplink.password": "the password is never in this file: put it in a file of its own and set password-file",
	"device.password": "the password is never in this file: set password-hash to the output of `shadowgw passwd`",
}

func lookupField(section, name string) (field, bool) {
	for _, s := range sections {
		if s.name != section {
			continue
		}
		for _, f := range s.fields {
			if f.name == name {
				return f, true
			}
		}
	}
	return field{}, false
}

func lookupDeviceField(name string) (deviceField, bool) {
	for _, f := range deviceFields {
		if f.name == name {
			return f, true
		}
	}
	return deviceField{}, false
}

func stringField(name string, p func(*Config) *string) field {
	return field{
		name: name,
		set:  func(c *Config, v string) error { *p(c) = v; return nil },
		get:  func(c *Config) string { return *p(c) },
	}
}

func pathField(name string, p func(*Config) *string) field {
	f := stringField(name, p)
	f.isPath = true
	return f
}

func boolField(name string, p func(*Config) *bool) field {
	return field{
		name: name,
		set: func(c *Config, v string) error {
			switch v {
			case "true":
				*p(c) = true
			case "false":
				*p(c) = false
			default:
				return fmt.Errorf("want true or false, got %q", v)
			}
			return nil
		},
		get: func(c *Config) string { return strconv.FormatBool(*p(c)) },
	}
}

func durationField(name string, p func(*Config) *time.Duration) field {
	return field{
		name: name,
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("want a duration such as 500ms, 30s or 5m, got %q", v)
			}
			*p(c) = d
			return nil
		},
		get: func(c *Config) string { return (*p(c)).String() },
	}
}

// intField is a non-negative decimal integer of at most limit; ranges are Validate's job.
func intField(name string, limit int64, get func(*Config) int64, set func(*Config, int64)) field {
	return field{
		name: name,
		set: func(c *Config, v string) error {
			n, err := parseCount(v, limit)
			if err != nil {
				return err
			}
			set(c, n)
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(get(c), 10) },
	}
}

// parseCount parses a non-negative decimal integer of at most limit.
func parseCount(v string, limit int64) (int64, error) {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || n > uint64(limit) {
		if errors.Is(err, strconv.ErrRange) || err == nil {
			return 0, fmt.Errorf("must be at most %d, got %s", limit, v)
		}
		return 0, fmt.Errorf("want a non-negative whole number, got %q", v)
	}
	return int64(n), nil
}

// sizeField is a byte count of at most limit, with an optional unit (see parseSize).
func sizeField(name string, limit uint64, get func(*Config) uint64, set func(*Config, uint64)) field {
	return field{
		name: name,
		set: func(c *Config, v string) error {
			n, err := parseSize(v)
			if err != nil {
				return err
			}
			if n > limit {
				return fmt.Errorf("must be at most %d, got %s", limit, v)
			}
			set(c, n)
			return nil
		},
		get: func(c *Config) string { return formatSize(get(c)) },
	}
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseSize parses a byte count: a decimal number, optionally followed by B, KiB, MiB or
// GiB, with or without a space: "65536", "64KiB", "1 MiB".
func parseSize(s string) (uint64, error) {
	num, shift := s, uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimRight(strings.TrimSuffix(s, u.suffix), " "), u.shift
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("want a size in bytes, optionally with a unit of KiB, MiB or GiB (1024-based), got %q", s)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if hi, _ := bits.Mul64(n, 1<<shift); err != nil || hi != 0 {
		return 0, fmt.Errorf("size %s is too large", s)
	}
	return n << shift, nil
}

// formatSize writes n with the largest unit that divides it exactly.
func formatSize(n uint64) string {
	for _, u := range sizeUnits[:3] {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}
