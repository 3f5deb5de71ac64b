// Package acl holds the device access rules the AMQP and the MQTT listeners share:
// from which networks anonymous devices may connect, and to which addresses each
// device may send. It is safe for concurrent use (pure functions).
package acl

import (
	"net"
	"net/netip"

	"github.com/shadowgw/shadowgw/edge/message"
)

// AnonymousFrom reports whether an anonymous device may connect from addr: allow must
// be set, and addr must be in one of networks (any address when networks is empty).
func AnonymousFrom(allow bool, networks []netip.Prefix, addr net.Addr) bool {
	if !allow {
		return false
	}
	if len(networks) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range networks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// MayTarget reports whether user ("" for anonymous) may send to address: targets
// lists, per user, exact addresses and prefixes ending in "*"
// (message.MatchAddress); a user without an entry may send anywhere.
func MayTarget(targets map[string][]string, user, address string) bool {
	patterns, ok := targets[user]
	if !ok {
		return true
	}
	for _, p := range patterns {
		if message.MatchAddress(p, address) {
			return true
		}
	}
	return false
}
