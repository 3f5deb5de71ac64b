//go:build pending_setusers

package edge

import (
	"maps"
)

// SetUsers replaces the SASL PLAIN users, name → credential hash (package credential),
// for the connections that authenticate from now on; connections already open keep
// their session. It is safe to call while the server runs and copies users.
func (s *Server) SetUsers(users map[string]string) {
	m := maps.Clone(users)
	if m == nil {
		m = map[string]string{}
	}
	s.users.Store(&m)
}

// userTable returns the SASL PLAIN users: the last SetUsers, or else Config.Users. The
// map must not be modified.
func (s *Server) userTable() map[string]string {
	if p := s.users.Load(); p != nil {
		return *p
	}
	return s.cfg.Users
}
