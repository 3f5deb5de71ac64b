package config

import (
	"math"
	"net"
	"time"
)

// MQTT configures the device-facing MQTT 3.1.1 and 5.0 server: section [mqtt]. Who may
// connect and where each device may publish are the [edge] and [device] rules:
// allow-anonymous, anonymous-networks, anonymous-targets, and each device's
// password-hash and targets (which, for MQTT, are topics).
type MQTT struct {
	// Listen is the TCP address to accept MQTT clients on, host:port (listen). Empty,
	// the default, turns MQTT off; the conventional port is 1883.
	Listen string

	// AddressPrefix is put in front of a topic to make the store address
	// (address-prefix); empty: the topic is the address.
	AddressPrefix string

	// MaxConnections is the most MQTT connections at once (max-connections).
	MaxConnections int

	// MaxPacketSize is the largest MQTT packet accepted, in bytes, whole
	// (max-packet-size); MQTT 5 clients are told it in CONNACK.
	MaxPacketSize uint64

	// ReceiveMaximum is how many publishes of one client may be being stored at once
	// (receive-maximum); MQTT 5 clients are told it in CONNACK.
	ReceiveMaximum int

	// MaxKeepAlive caps the keep-alive clients ask for; a client asking for more, or
	// for none, gets this one (max-keep-alive, whole seconds); 0 means the client's.
	MaxKeepAlive time.Duration

	// HandshakeTimeout is the time a client has from connecting to sending CONNECT
	// (handshake-timeout).
	HandshakeTimeout time.Duration

	// CommandInFlight is how many commands one subscriber may have unacknowledged
	// (command-in-flight); fewer when its MQTT 5 Receive Maximum is lower.
	CommandInFlight int

	// TopicAliasMaximum is the highest MQTT 5 Topic Alias clients may use in their
	// PUBLISHes (topic-alias-maximum); 0: none.
	TopicAliasMaximum int
}

// Enabled reports whether the MQTT server runs.
func (m MQTT) Enabled() bool { return m.Listen != "" }

// Limits of [mqtt].
const (
	minMQTTPacketSize = 128
	maxMQTTPacketSize = maxMessageSize + 64<<10
	maxMQTTKeepAlive  = 65535 * time.Second // the largest Keep Alive a CONNECT can carry
)

func defaultMQTT() MQTT {
	return MQTT{
		MaxConnections:    1000,
		MaxPacketSize:     1<<20 + 1<<10,
		ReceiveMaximum:    256,
		HandshakeTimeout:  10 * time.Second,
		CommandInFlight:   32,
		TopicAliasMaximum: 16,
	}
}

func mqttFields() []field {
	return []field{
		stringField("listen", func(c *Config) *string { return &c.MQTT.Listen }),
		stringField("address-prefix", func(c *Config) *string { return &c.MQTT.AddressPrefix }),
		intField("max-connections", math.MaxInt32, func(c *Config) int64 { return int64(c.MQTT.MaxConnections) },
			func(c *Config, v int64) { c.MQTT.MaxConnections = int(v) }),
		sizeField("max-packet-size", math.MaxUint32, func(c *Config) uint64 { return c.MQTT.MaxPacketSize },
			func(c *Config, v uint64) { c.MQTT.MaxPacketSize = v }),
		intField("receive-maximum", math.MaxInt32, func(c *Config) int64 { return int64(c.MQTT.ReceiveMaximum) },
			func(c *Config, v int64) { c.MQTT.ReceiveMaximum = int(v) }),
		durationField("max-keep-alive", func(c *Config) *time.Duration { return &c.MQTT.MaxKeepAlive }),
		durationField("handshake-timeout", func(c *Config) *time.Duration { return &c.MQTT.HandshakeTimeout }),
		intField("command-in-flight", math.MaxInt32, func(c *Config) int64 { return int64(c.MQTT.CommandInFlight) },
			func(c *Config, v int64) { c.MQTT.CommandInFlight = int(v) }),
		intField("topic-alias-maximum", math.MaxInt32, func(c *Config) int64 { return int64(c.MQTT.TopicAliasMaximum) },
			func(c *Config, v int64) { c.MQTT.TopicAliasMaximum = int(v) }),
	}
}

func (c *Config) validateMQTT(add func(*Error)) {
	m := c.MQTT
	at := func(field string, format string, args ...any) {
		add(c.problem("mqtt", field, key("mqtt", field), nil, format, args...))
	}
	if m.Listen != "" {
		if _, port, err := net.SplitHostPort(m.Listen); err != nil {
			at("listen", "want HOST:PORT (e.g. 127.0.0.1:1883), or empty for no MQTT, got %q", m.Listen)
		} else if !isPort(port, 0) {
			at("listen", "port must be a number from 0 to 65535, got %q", port)
		} else if m.Listen == c.Edge.Listen && port != "0" {
			at("listen", "is the same address as [edge] listen (%s)", c.Edge.Listen)
		}
	}
	if m.MaxConnections < 1 || m.MaxConnections > 100000 {
		at("max-connections", "must be from 1 to 100000, got %d", m.MaxConnections)
	}
	if m.MaxPacketSize < minMQTTPacketSize || m.MaxPacketSize > maxMQTTPacketSize {
		at("max-packet-size", "must be from %d to %d (%s), got %d", minMQTTPacketSize, maxMQTTPacketSize, formatSize(maxMQTTPacketSize), m.MaxPacketSize)
	}
	if m.ReceiveMaximum < 1 || m.ReceiveMaximum > 65535 {
		at("receive-maximum", "must be from 1 to 65535 (MQTT 5 Receive Maximum), got %d", m.ReceiveMaximum)
	}
	if m.MaxKeepAlive < 0 || m.MaxKeepAlive > maxMQTTKeepAlive || m.MaxKeepAlive%time.Second != 0 {
		at("max-keep-alive", "must be 0 (the client's) or whole seconds up to %v, got %v", maxMQTTKeepAlive, m.MaxKeepAlive)
	}
	if m.HandshakeTimeout < 100*time.Millisecond || m.HandshakeTimeout > 10*time.Minute {
		at("handshake-timeout", "must be from 100ms to 10m, got %v", m.HandshakeTimeout)
	}
	if m.CommandInFlight < 1 || m.CommandInFlight > 65535 {
		at("command-in-flight", "must be from 1 to 65535, got %d", m.CommandInFlight)
	}
	if m.TopicAliasMaximum < 0 || m.TopicAliasMaximum > 65535 {
		at("topic-alias-maximum", "must be from 0 (none) to 65535 (MQTT 5 Topic Alias Maximum), got %d", m.TopicAliasMaximum)
	}
}
