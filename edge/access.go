package edge

import (
	"net"
	"net/netip"

	"github.com/shadowgw/shadowgw/edge/message"
)

// anonymousFrom reports whether an anonymous device (SASL ANONYMOUS, or no SASL layer)
// may connect from the remote address addr.
func (s *Server) anonymousFrom(addr net.Addr) bool {
	if !s.cfg.AllowAnonymous {
		return false
	}
	if len(s.cfg.AnonymousNetworks) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.cfg.AnonymousNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// mayTarget reports whether the device authenticated as user ("" for anonymous) may send
// to address: Config.Targets lists, per user, exact addresses and prefixes ending in
// "*"; a user without an entry may send anywhere.
func (s *Server) mayTarget(user, address string) bool {
	patterns, ok := s.currentAccess().targets[user]
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
