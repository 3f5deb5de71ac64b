package config

import (
	"math"
	"strings"
	"time"
)

// Commands configures the queues of commands for devices (cloud → device): section
// [commands]. The cloud source they are received from is [uplink] commands.
type Commands struct {
	// DefaultTTL is the expiry of a command that sets none (default-ttl).
	DefaultTTL time.Duration
	// MaxTTL caps every command's expiry (max-ttl).
	MaxTTL time.Duration
	// MaxPerDevice and MaxBytesPerDevice are one device's budget (max-per-device,
	// max-bytes-per-device); MaxMessages and MaxBytes the total (max-messages,
	// max-bytes). A command that does not fit is released upstream: the cloud keeps it.
	MaxPerDevice, MaxBytesPerDevice, MaxMessages, MaxBytes uint64
	// AnonymousIDs are the device ids whose commands anonymous devices may receive
	// (command/<id>): exact ids and prefixes ending in "*"; empty means any
	// (anonymous-ids), like anonymous-targets.
	AnonymousIDs []string
}

func defaultCommands() Commands {
	return Commands{
		DefaultTTL:        time.Hour,
		MaxTTL:            48 * time.Hour,
		MaxPerDevice:      1000,
		MaxBytesPerDevice: 1 << 20,
		MaxMessages:       100000,
		MaxBytes:          64 << 20,
	}
}

func commandsFields() []field {
	return []field{
		durationField("default-ttl", func(c *Config) *time.Duration { return &c.Commands.DefaultTTL }),
		durationField("max-ttl", func(c *Config) *time.Duration { return &c.Commands.MaxTTL }),
		intField("max-per-device", math.MaxInt64, func(c *Config) int64 { return int64(c.Commands.MaxPerDevice) },
			func(c *Config, v int64) { c.Commands.MaxPerDevice = uint64(v) }),
		sizeField("max-bytes-per-device", math.MaxUint64, func(c *Config) uint64 { return c.Commands.MaxBytesPerDevice },
			func(c *Config, v uint64) { c.Commands.MaxBytesPerDevice = v }),
		intField("max-messages", math.MaxInt64, func(c *Config) int64 { return int64(c.Commands.MaxMessages) },
			func(c *Config, v int64) { c.Commands.MaxMessages = uint64(v) }),
		sizeField("max-bytes", math.MaxUint64, func(c *Config) uint64 { return c.Commands.MaxBytes },
			func(c *Config, v uint64) { c.Commands.MaxBytes = v }),
		{
			name: "anonymous-ids",
			set:  func(c *Config, v string) (err error) { c.Commands.AnonymousIDs, err = parseTargets(v); return err },
			get:  func(c *Config) string { return strings.Join(c.Commands.AnonymousIDs, ", ") },
		},
	}
}

func (c *Config) validateCommands(add func(*Error)) {
	m := c.Commands
	at := func(field string, format string, args ...any) {
		add(c.problem("commands", field, key("commands", field), nil, format, args...))
	}
	if m.DefaultTTL <= 0 {
		at("default-ttl", "must be positive")
	}
	if m.MaxTTL < m.DefaultTTL {
		at("max-ttl", "must be at least default-ttl (%s)", m.DefaultTTL)
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"max-per-device", m.MaxPerDevice}, {"max-bytes-per-device", m.MaxBytesPerDevice}, {"max-messages", m.MaxMessages}, {"max-bytes", m.MaxBytes}} {
		if f.v == 0 {
			at(f.name, "must be positive")
		}
	}
}
