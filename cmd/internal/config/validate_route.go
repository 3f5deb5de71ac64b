package config

import (
	"fmt"
	"strings"
)

// validateRoutes checks every [route "NAME"] section: its name, that it is configured
// once, that it has addresses (the default route none), that no address pattern is
// claimed twice, and its values.
func (c *Config) validateRoutes(add func(*Error)) {
	first := make(map[string]int)    // route name → index of its first section
	patterns := make(map[string]int) // address pattern → index of the route that has it
	for i, r := range c.Routes {
		section := routeDisplay(r.Name)
		set := func(field string) bool { _, ok := c.origins[routeKey(i, field)]; return ok }
		at := func(field string, format string, args ...any) {
			k := routeKey(i, field)
			if !set(field) {
				k = routeKey(i, "") // a missing value: point at the section header
			}
			add(c.problem(section, field, k, nil, format, args...))
		}
		if msg := checkRouteName(r.Name); msg != "" {
			at("", "%s", msg)
		}
		if j, dup := first[r.Name]; dup {
			if line := c.origins[routeKey(j, "")].line; line > 0 {
				at("", "configured twice (first on line %d): put its keys in one section", line)
			} else {
				at("", "configured twice")
			}
			continue // its addresses would be reported as taken by itself
		}
		first[r.Name] = i

		switch {
		case r.Name == defaultRouteName && len(r.Addresses) > 0:
			at("addresses", "the default route takes every address no other route matches; it has no addresses")
		case r.Name != defaultRouteName && len(r.Addresses) == 0 && !c.origins[routeKey(i, "addresses")].rejected:
			at("addresses", "missing: list the target addresses the route takes, such as alarms/* (the default route takes the rest)")
		}
		seen := make(map[string]bool, len(r.Addresses))
		for _, p := range r.Addresses {
			switch j, taken := patterns[p]; {
			case p == "*":
				at("addresses", `"*" takes every address: leave such messages to the default route, or configure [route "default"]`)
			case strings.ContainsFunc(p, isControl):
				at("addresses", "%q contains a control character", p)
			case seen[p]:
				at("addresses", "%q is listed twice", p)
			case taken:
				other := c.Routes[j].Name
				if line := c.origins[routeKey(j, "addresses")].line; line > 0 {
					at("addresses", "%q is already taken by [%s] (line %d)", p, routeDisplay(other), line)
				} else {
					at("addresses", "%q is already taken by [%s]", p, routeDisplay(other))
				}
			default:
				patterns[p] = i
			}
			seen[p] = true
		}
		if r.WhenFull != "" && r.WhenFull != "backpressure" && r.WhenFull != "drop-oldest" {
			at("when-full", "must be backpressure or drop-oldest (or empty for [store] when-full), got %q", r.WhenFull)
		}
		if r.DefaultTTL != nil && *r.DefaultTTL < 0 {
			at("default-ttl", "must not be negative, got %v", *r.DefaultTTL)
		}
		if r.Direct() {
			// Nothing of a direct route is queued: a budget, a policy for a full queue
			// or an expiry in the queue would promise what the route does not do.
			for _, f := range routeFields {
				if f := f.name; queueOnly(f) && set(f) {
					at(f, "has no meaning for a direct route (mode = direct): nothing of it is queued; remove it")
				}
			}
		}
	}
}

// checkRouteName returns what is wrong with a route name, or "".
func checkRouteName(name string) string {
	if name == "" || len(name) > maxRouteName {
		return fmt.Sprintf("route name must be 1 to %d characters", maxRouteName)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-", r)) {
			return fmt.Sprintf("route name may contain only letters, digits and . _ -, got %q", r)
		}
	}
	return ""
}

// queueOnly reports whether a [route] key concerns the route's queue in the store, which
// a direct route does not have.
func queueOnly(field string) bool {
	switch field {
	case "max-bytes", "max-messages", "when-full", "default-ttl":
		return true
	}
	return false
}
