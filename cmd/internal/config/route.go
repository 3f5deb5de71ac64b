package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Route is a queue of the store with a priority, a budget and a policy of its own: one
// [route "NAME"] section. Messages are put on the route whose address pattern matches
// their target address (the longest pattern wins), the rest on the default route. The
// [store] budgets are totals over all routes; a route's budget is its share within them.
type Route struct {
	// Name identifies the route (the section name): letters, digits, '-', '_' and '.',
	// at most 64 characters. The store keeps it with the messages: a route renamed while
	// it holds messages leaves them on a route of the old name, which is forwarded at
	// priority 0 and takes nothing new.
	Name string

	// Addresses are the target addresses the route takes: exact addresses and prefixes
	// ending in "*" (addresses, comma-separated like [edge] anonymous-targets). Required,
	// except for the route named "default", which takes every address no other route
	// matches and must have none.
	Addresses []string

	// Priority orders forwarding: every message of a route of higher priority is
	// forwarded before any of a lower one (priority, a whole number that may be
	// negative; default 0, the default route's).
	Priority int

	// MaxBytes is the route's budget of queued payload bytes and MaxMessages its budget
	// of queued messages; 0 means none (max-bytes, max-messages).
	MaxBytes    uint64
	MaxMessages uint64

	// WhenFull is what happens when the route's budget, or the store's, is reached:
	// "backpressure" or "drop-oldest"; "" means [store] when-full (when-full). When the
	// store as a whole is full, lower-priority drop-oldest routes lose their oldest
	// messages first to make room for higher-priority ones.
	WhenFull string

	// DefaultTTL is the time to live of the route's messages that carry no ttl or
	// absolute-expiry-time of their own; 0 means they never expire, nil means [store]
	// default-ttl (default-ttl).
	DefaultTTL *time.Duration

	// Mode is how the route's messages travel (mode): ModeStored ("" means it too)
	// through the store, acknowledged to the device once on disk; or ModeDirect, straight
	// to the cloud, the device getting the cloud's own outcome, nothing written to disk.
	// A direct route has no budget, when-full or default-ttl: nothing of it is queued.
	Mode string
}

// Route modes (Route.Mode).
const (
	ModeStored = "stored"
	ModeDirect = "direct"
)

// Direct reports whether the route's messages bypass the store.
func (r Route) Direct() bool { return r.Mode == ModeDirect }

// routeSection is the name of the repeated [route "NAME"] section.
const routeSection = "route"

// defaultRouteName is the route that takes every address no other route matches; see
// package store.
const defaultRouteName = "default"

// maxRouteName bounds route names, as the store does.
const maxRouteName = 64

// routeField is one key of a [route "NAME"] section.
type routeField struct {
	name string
	set  func(r *Route, v string) error
	get  func(r *Route) string
}

// routeFields lists the keys in the order String writes them.
var routeFields = []routeField{
	{name: "addresses",
		set: func(r *Route, v string) (err error) { r.Addresses, err = parseTargets(v); return err },
		get: func(r *Route) string { return strings.Join(r.Addresses, ", ") }},
	{name: "priority",
		set: func(r *Route, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("must be from %d to %d, got %s", math.MinInt32, math.MaxInt32, v)
			}
			if err != nil {
				return fmt.Errorf("want a whole number such as 10 or -1 (higher is forwarded first), got %q", v)
			}
			r.Priority = int(n)
			return nil
		},
		get: func(r *Route) string { return strconv.Itoa(r.Priority) }},
	{name: "max-bytes",
		set: func(r *Route, v string) (err error) { r.MaxBytes, err = parseSize(v); return err },
		get: func(r *Route) string { return formatSize(r.MaxBytes) }},
	{name: "max-messages",
		set: func(r *Route, v string) error {
			n, err := parseCount(v, math.MaxInt64)
			if err != nil {
				return err
			}
			r.MaxMessages = uint64(n)
			return nil
		},
		get: func(r *Route) string { return strconv.FormatUint(r.MaxMessages, 10) }},
	{name: "when-full",
		set: func(r *Route, v string) error { r.WhenFull = v; return nil },
		get: func(r *Route) string { return r.WhenFull }},
	{name: "default-ttl",
		set: func(r *Route, v string) error {
			if v == "" {
				r.DefaultTTL = nil
				return nil
			}
			var d time.Duration
			if err := setDuration(&d, v); err != nil {
				return err
			}
			r.DefaultTTL = &d
			return nil
		},
		get: func(r *Route) string {
			if r.DefaultTTL == nil {
				return ""
			}
			return r.DefaultTTL.String()
		}},
	{name: "mode",
		set: func(r *Route, v string) error {
			if v != "" && v != ModeStored && v != ModeDirect {
				return fmt.Errorf("must be %s or %s, got %q", ModeStored, ModeDirect, v)
			}
			r.Mode = v
			return nil
		},
		get: func(r *Route) string { return r.Mode }},
}

func lookupRouteField(name string) (routeField, bool) {
	for _, f := range routeFields {
		if f.name == name {
			return f, true
		}
	}
	return routeField{}, false
}

func routeKey(i int, field string) string {
	return key(fmt.Sprintf("%s.%d", routeSection, i), field)
}

// routeDisplay returns a route's section as written in errors: route "NAME".
func routeDisplay(name string) string { return fmt.Sprintf("%s %q", routeSection, name) }

// EffectiveWhenFull returns the route's when-full policy: its own, or else [store]
// when-full of c.
func (c Config) EffectiveWhenFull(r Route) string {
	if r.WhenFull != "" {
		return r.WhenFull
	}
	return c.Store.WhenFull
}

// EffectiveDefaultTTL returns the route's default time to live: its own, or else
// [store] default-ttl of c.
func (c Config) EffectiveDefaultTTL(r Route) time.Duration {
	if r.DefaultTTL != nil {
		return *r.DefaultTTL
	}
	return c.Store.DefaultTTL
}
