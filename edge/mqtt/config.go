package mqtt

import (
	"net/netip"
	"time"
)

// Config is the MQTT server's configuration. Zero fields take the defaults documented
// on each.
type Config struct {
	// AllowAnonymous accepts clients that send no user name.
	AllowAnonymous bool
	// AnonymousNetworks limits anonymous clients to these source networks; empty: any.
	AnonymousNetworks []netip.Prefix
	// Users are the clients that log in with a user name and password: name →
	// credential hash (package credential), the [device] sections.
	Users map[string]string
	// Targets limits, per user ("" for anonymous clients), the topics a client may
	// publish to: exact topics and prefixes ending in "*". A user without an entry
	// may publish anywhere. Matched against the topic, before AddressPrefix.
	Targets map[string][]string
	// AddressPrefix is put in front of a topic to make the store address; default ""
	// (the topic is the address).
	AddressPrefix string

	// MaxConnections bounds the client connections; default 1000.
	MaxConnections int
	// MaxPacketSize is the largest packet accepted, whole (announced to MQTT 5
	// clients as Maximum Packet Size); default 1 MiB + 1 KiB.
	MaxPacketSize int
	// ReceiveMaximum bounds the publishes of one client being stored at once
	// (announced to MQTT 5 clients as Receive Maximum; 3.1.1 clients are simply not
	// read further); default 256, at most 65535.
	ReceiveMaximum int
	// MaxKeepAlive caps a client's keep-alive: a client asking for more (or for none)
	// gets this (MQTT 5: Server Keep Alive), and is disconnected after 1.5 times it
	// without a packet. 0: the client's own keep-alive, or none if it asks for none.
	MaxKeepAlive time.Duration
	// HandshakeTimeout is the time a client has to send its CONNECT; default 10s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to a client that does not read; default 30s.
	WriteTimeout time.Duration
	// CommandAccess lists, per user ("" for anonymous clients), the device ids whose
	// commands a client may subscribe to besides its own (acl.MayReadCommands: an
	// anonymous client without an entry may read any id's).
	CommandAccess map[string][]string
	// CommandInflight bounds the commands sent to one client and not yet
	// acknowledged (lower if the client's Receive Maximum is lower); default 32.
	CommandInflight int
	// TopicAliasMaximum is the highest Topic Alias a client may use in its PUBLISHes
	// (announced to MQTT 5 clients); default 16; negative: none.
	TopicAliasMaximum int
	// MaxSessions bounds the sessions kept for disconnected clients (subscriptions,
	// commands unacknowledged, QoS 2 packet identifiers awaiting PUBREL); default
	// 10000.
	MaxSessions int
}

func (c *Config) setDefaults() {
	if c.MaxConnections <= 0 {
		c.MaxConnections = 1000
	}
	if c.MaxPacketSize <= 0 {
		c.MaxPacketSize = 1<<20 + 1<<10
	}
	if c.ReceiveMaximum <= 0 {
		c.ReceiveMaximum = 256
	}
	c.ReceiveMaximum = min(c.ReceiveMaximum, 65535)
	if c.MaxKeepAlive < 0 {
		c.MaxKeepAlive = 0
	}
	c.MaxKeepAlive = min(c.MaxKeepAlive, 65535*time.Second)
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.CommandInflight <= 0 {
		c.CommandInflight = 32
	}
	c.CommandInflight = min(c.CommandInflight, 65535)
	if c.TopicAliasMaximum == 0 {
		c.TopicAliasMaximum = 16
	}
	c.TopicAliasMaximum = min(c.TopicAliasMaximum, 65535)
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
}
