package config

import (
	"errors"
	"math"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/uplink"
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
	// Direct lists the devices whose commands take a direct route (direct): exact
	// ids and prefixes ending in "*". Their commands are not stored: while such a
	// device's command receiver is attached, the uplink holds a receiver for it on
	// DirectSource and the device's outcome is the cloud's.
	Direct []string
	// DirectSource is the cloud source address of a direct device's commands
	// (direct-source), an address template as [uplink] address-template with
	// {device} the device id, {address} "command/<device-id>" and {route} "command";
	// default "command/{device}".
	DirectSource string
	// Presence is the address of the events that say when a device's command
	// receiver attaches and goes away (presence); empty: none. They go through the
	// store, ordered with the device's messages, and expire after PresenceTTL.
	Presence string
	// PresenceTTL is a presence event's expiry (presence-ttl): a stale "connected"
	// is not delivered late.
	PresenceTTL time.Duration
}

func defaultCommands() Commands {
	return Commands{
		DefaultTTL:        time.Hour,
		MaxTTL:            48 * time.Hour,
		MaxPerDevice:      1000,
		MaxBytesPerDevice: 1 << 20,
		MaxMessages:       100000,
		MaxBytes:          64 << 20,
		DirectSource:      "command/{device}",
		PresenceTTL:       time.Minute,
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
		{
			name: "direct",
			set:  func(c *Config, v string) (err error) { c.Commands.Direct, err = parseTargets(v); return err },
			get:  func(c *Config) string { return strings.Join(c.Commands.Direct, ", ") },
		},
		stringField("direct-source", func(c *Config) *string { return &c.Commands.DirectSource }),
		stringField("presence", func(c *Config) *string { return &c.Commands.Presence }),
		durationField("presence-ttl", func(c *Config) *time.Duration { return &c.Commands.PresenceTTL }),
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
	if m.PresenceTTL <= 0 {
		at("presence-ttl", "must be positive")
	}
	if strings.ContainsFunc(m.Presence, isControl) {
		at("presence", "contains a control character")
	}
	if strings.ContainsFunc(m.DirectSource, isControl) {
		at("direct-source", "contains a control character")
	} else if _, err := uplink.ParseAddressTemplate(m.DirectSource); err != nil || m.DirectSource == "" {
		if err == nil {
			err = errors.New("empty")
		}
		at("direct-source", "%v", err)
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
