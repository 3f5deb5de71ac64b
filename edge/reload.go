package edge

import (
	"maps"
)

// access is who may connect with SASL PLAIN and where each device may send; it can be
// replaced while the server runs (SetAccess).
type access struct {
	users   map[string]string   // user → credential hash
	targets map[string][]string // user ("" for anonymous) → allowed target patterns
}

// SetAccess replaces the SASL PLAIN users (name → credential hash, package credential)
// and the per-device target restrictions (see Config.Targets) for connections that
// authenticate or attach from now on; links already attached keep going. It is safe to
// call while the server runs; it copies the maps.
func (s *Server) SetAccess(users map[string]string, targets map[string][]string) {
	a := &access{users: maps.Clone(users), targets: maps.Clone(targets)}
	if a.users == nil {
		a.users = map[string]string{}
	}
	s.access.Store(a)
}

// currentAccess returns the last SetAccess, or the configuration's. The maps must not be
// modified.
func (s *Server) currentAccess() *access {
	if a := s.access.Load(); a != nil {
		return a
	}
	return &access{users: s.cfg.Users, targets: s.cfg.Targets}
}
