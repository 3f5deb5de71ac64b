package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
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
	}},
	{"store", []field{
		pathField("dir", func(c *Config) *string { return &c.Store.Dir }),
		intField("max-batch", math.MaxInt32, func(c *Config) int64 { return int64(c.Store.MaxBatch) },
			func(c *Config, v int64) { c.Store.MaxBatch = int(v) }),
		durationField("max-delay", func(c *Config) *time.Duration { return &c.Store.MaxDelay }),
	}},
	{"uplink", []field{
		stringField("url", func(c *Config) *string { return &c.Uplink.URL }),
		pathField("ca", func(c *Config) *string { return &c.Uplink.CA }),
		stringField("server-name", func(c *Config) *string { return &c.Uplink.ServerName }),
		stringField("user", func(c *Config) *string { return &c.Uplink.User }),
		pathField("password-file", func(c *Config) *string { return &c.Uplink.PasswordFile }),
		stringField("address-prefix", func(c *Config) *string { return &c.Uplink.AddressPrefix }),
		intField("in-flight", math.MaxInt32, func(c *Config) int64 { return int64(c.Uplink.InFlight) },
			func(c *Config, v int64) { c.Uplink.InFlight = int(v) }),
		durationField("reconnect-min", func(c *Config) *time.Duration { return &c.Uplink.ReconnectMin }),
		durationField("reconnect-max", func(c *Config) *time.Duration { return &c.Uplink.ReconnectMax }),
	}},
	{"log", []field{
		stringField("level", func(c *Config) *string { return &c.Log.Level }),
	}},
}

// deviceSection is the name of the repeated [device "NAME"] section.
const deviceSection = "device"

var deviceFields = []deviceField{
	{
		name: "password-hash",
		set:  func(d *Device, v string) error { d.PasswordHash = v; return nil },
		get:  func(d *Device) string { return d.PasswordHash },
	},
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
			n, err := strconv.ParseUint(v, 10, 63)
			if err != nil || n > uint64(limit) {
				if errors.Is(err, strconv.ErrRange) || err == nil {
					return fmt.Errorf("must be at most %d, got %s", limit, v)
				}
				return fmt.Errorf("want a non-negative whole number, got %q", v)
			}
			set(c, int64(n))
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(get(c), 10) },
	}
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
