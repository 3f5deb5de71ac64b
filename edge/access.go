package edge

import (
	"github.com/shadowgw/shadowgw/edge/acl"
	"net"
)

// anonymousFrom reports whether an anonymous device (SASL ANONYMOUS, or no SASL layer)
// may connect from the remote address addr.
func (s *Server) anonymousFrom(addr net.Addr) bool {
	return acl.AnonymousFrom(s.cfg.AllowAnonymous, s.cfg.AnonymousNetworks, addr)
}

// mayTarget reports whether the device authenticated as user ("" for anonymous) may send
// to address (acl.MayTarget over Config.Targets, as reloaded).
func (s *Server) mayTarget(user, address string) bool {
	return acl.MayTarget(s.currentAccess().targets, user, address)
}
