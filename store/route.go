package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultRoute is the name of the route that takes every address no other route
// matches. It always exists.
const DefaultRoute = "default"

// Route configures one queue of the store. Messages are put on a route by their
// address when they are appended; each route is first in, first out, and routes
// are drained by priority (see ReadNext).
type Route struct {
	// Name identifies the route: letters, digits, '-', '_' and '.', at most 64
	// bytes. The name is stored in the file, so renaming a route leaves its
	// messages on a route of the old name (see the package documentation).
	Name string
	// Addresses are the target addresses the route takes: exact addresses, and
	// prefixes ending in "*" ("alarms/*"). The longest matching pattern wins. The
	// default route has none: it takes the rest.
	Addresses []string
	// Priority orders draining: every message of a route of higher priority is
	// read before any of a lower one. Routes of equal priority are read together
	// in seq (arrival) order.
	Priority int
	// MaxBytes and MaxMessages are the route's own budget of queued payload
	// bytes and messages, inside the store's total (Options.MaxBytes,
	// MaxMessages); 0 means none.
	MaxBytes    uint64
	MaxMessages uint64
	// WhenFull is what happens when the route's budget, or the store's, is
	// reached. A DropOldest route drops its own oldest messages; when the store
	// as a whole is full, messages of lower-priority DropOldest routes are
	// dropped first to make room for a higher-priority route of either policy.
	WhenFull FullPolicy
	// DefaultTTL is the time to live of the route's messages that carry
	// neither a header ttl nor a properties absolute-expiry-time; 0: never.
	DefaultTTL time.Duration
}

// ValidateRoutes checks a set of routes: names valid and unique, patterns valid
// and claimed by one route only, no addresses on the default route.
func ValidateRoutes(routes []Route) error {
	names := map[string]bool{}
	patterns := map[string]string{}
	for _, r := range routes {
		if err := validRouteName(r.Name); err != nil {
			return err
		}
		if names[r.Name] {
			return fmt.Errorf("route %q: configured twice", r.Name)
		}
		names[r.Name] = true
		if r.Name == DefaultRoute && len(r.Addresses) > 0 {
			return fmt.Errorf("route %q: takes every address no other route matches; it has no addresses", DefaultRoute)
		}
		if r.Name != DefaultRoute && len(r.Addresses) == 0 {
			return fmt.Errorf("route %q: no addresses", r.Name)
		}
		for _, p := range r.Addresses {
			if err := validPattern(p); err != nil {
				return fmt.Errorf("route %q: %w", r.Name, err)
			}
			if other, ok := patterns[p]; ok {
				return fmt.Errorf("route %q: address %q is already taken by route %q", r.Name, p, other)
			}
			patterns[p] = r.Name
		}
		if r.WhenFull != Backpressure && r.WhenFull != DropOldest {
			return fmt.Errorf("route %q: %v", r.Name, r.WhenFull)
		}
		if r.DefaultTTL < 0 {
			return fmt.Errorf("route %q: negative default TTL %v", r.Name, r.DefaultTTL)
		}
	}
	return nil
}

func validRouteName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("route name %q: must be 1 to 64 bytes", name)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("route name %q: only letters, digits, '-', '_' and '.' are allowed", name)
		}
	}
	return nil
}

func validPattern(p string) error {
	if p == "" || p == "*" {
		return fmt.Errorf("address pattern %q: empty (the default route takes every other address)", p)
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return fmt.Errorf("address pattern %q: '*' is only allowed at the end", p)
	}
	return nil
}

// route is a Route as the store runs it.
type route struct {
	Route
	key []byte // bucket name under "q"
	idx int    // index in Store.routes

	// Owned by the committer goroutine after Open returns.
	count     counters // as persisted by the last commit
	dropped   uint64   // since Open
	fullWhy   string   // why FullFor is true for the route, "" if it is not
	refused   string   // the budget that refused the last append, see updateFull
	refusedAt uint64   // the bytes (of the route or the store) when it did
	orphan    bool     // in the file but not configured
}

// routeTable maps addresses to routes. It is built once by Open and read-only
// afterwards.
type routeTable struct {
	all      []*route // by priority, highest first, then name
	byName   map[string]*route
	exact    map[string]*route
	prefixes []prefixRoute // longest first
	dflt     *route
	lowFirst []*route // DropOldest routes by priority, lowest first: eviction order
}

type prefixRoute struct {
	prefix string
	r      *route
}

// newRouteTable builds the table from the configured routes, adding the default
// route from opts if it is not among them.
func newRouteTable(opts Options) (*routeTable, error) {
	if err := ValidateRoutes(opts.Routes); err != nil {
		return nil, err
	}
	t := &routeTable{byName: map[string]*route{}, exact: map[string]*route{}}
	cfg := slices.Clone(opts.Routes)
	if !slices.ContainsFunc(cfg, func(r Route) bool { return r.Name == DefaultRoute }) {
		cfg = append(cfg, Route{Name: DefaultRoute, WhenFull: opts.WhenFull, DefaultTTL: opts.DefaultTTL})
	}
	for _, rc := range cfg {
		t.add(&route{Route: rc})
	}
	return t, nil
}

// add puts r in the table and re-sorts it.
func (t *routeTable) add(r *route) {
	r.Addresses = slices.Clone(r.Addresses)
	r.key = []byte(r.Name)
	t.all = append(t.all, r)
	t.byName[r.Name] = r
	if r.Name == DefaultRoute {
		t.dflt = r
	}
	for _, p := range r.Addresses {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			t.prefixes = append(t.prefixes, prefixRoute{prefix, r})
		} else {
			t.exact[p] = r
		}
	}
	slices.SortFunc(t.prefixes, func(a, b prefixRoute) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	slices.SortStableFunc(t.all, func(a, b *route) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	t.lowFirst = t.lowFirst[:0]
	for i, r := range t.all {
		r.idx = i
	}
	for i := len(t.all) - 1; i >= 0; i-- {
		if t.all[i].WhenFull == DropOldest {
			t.lowFirst = append(t.lowFirst, t.all[i])
		}
	}
}

// lookup returns the route that takes address.
func (t *routeTable) lookup(address string) *route {
	if r, ok := t.exact[address]; ok {
		return r
	}
	for _, p := range t.prefixes {
		if strings.HasPrefix(address, p.prefix) {
			return p.r
		}
	}
	return t.dflt
}

// RouteOf returns the name of the route that takes messages sent to address.
func (s *Store) RouteOf(address string) string { return s.rt.lookup(address).Name }

// keyRouting is the meta key of the fingerprint of the routing that placed the
// queued messages (see reroute).
var keyRouting = []byte("routing")

// fingerprint identifies how addresses map to configured routes.
func (t *routeTable) fingerprint() []byte {
	var lines []string
	for _, r := range t.all {
		if !r.orphan {
			lines = append(lines, r.Name+"\x00"+strings.Join(slices.Sorted(slices.Values(r.Addresses)), "\x00"))
		}
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return sum[:]
}

// reroute moves every queued message whose address the configured routes now
// map to another route onto that route, under its seq, when the routing
// changed since the file was last opened. A route's messages stay in seq order,
// so the messages of one address keep their order whatever the change, and
// they follow their new route's priority. It runs in Open, before the
// committer and any reader, in transactions of at most purgeChunk moves; a
// crash in between leaves every message on one route or the other, and the
// next Open goes on (the fingerprint is written last).
func (s *Store) reroute() error {
	fp := s.rt.fingerprint()
	var stored []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bucketMeta).Get(keyRouting))
		return nil
	})
	if err != nil || bytes.Equal(stored, fp) {
		return err
	}
	from := make([]uint64, len(s.rt.all)) // per route: seqs up to here were examined
	total := 0
	for {
		moved, done := 0, true
		err := s.db.Update(func(tx *bolt.Tx) error {
			t := &s.txn
			t.begin(s, tx)
			defer t.end()
			s.arena = s.arena[:0]
			for _, r := range s.rt.all {
				type move struct {
					seq uint64
					to  *route
				}
				var moves []move
				c := t.buckets[r.idx].Cursor()
				for k, v := c.Seek(seqKey(from[r.idx] + 1)); k != nil; k, v = c.Next() {
					if moved+len(moves) >= purgeChunk {
						done = false
						break
					}
					seq, err := keySeq(k)
					if err != nil {
						continue
					}
					from[r.idx] = seq
					h, err := decodeMessageRecord(seq, v)
					if err != nil {
						continue // stays; Check reports it
					}
					if to := s.rt.lookup(string(h.address)); to != r {
						moves = append(moves, move{seq, to})
					}
				}
				// Looked up again: the writes of earlier moves may have
				// invalidated values read during the scan.
				for _, m := range moves {
					v := t.buckets[r.idx].Get(s.key(m.seq))
					h, err := decodeMessageRecord(m.seq, v)
					if err != nil {
						return err
					}
					address, source, payload := string(h.address), string(h.source), bytes.Clone(h.payload)
					if _, err := s.removeFrom(t, r, m.seq); err != nil {
						return err
					}
					if err := s.putMessage(t, m.to, m.seq, h.received, h.expires, address, source, payload); err != nil {
						return err
					}
				}
				moved += len(moves)
			}
			if err := s.putCounts(t); err != nil {
				return err
			}
			if done {
				return t.meta.Put(keyRouting, fp)
			}
			return nil
		})
		s.arena = s.arena[:0]
		if err != nil {
			return fmt.Errorf("reroute: %w", err)
		}
		// The transaction committed: the routes hold what t counted.
		for i, r := range s.rt.all {
			r.count = s.txn.rc[i]
		}
		s.persisted = s.txn.c
		total += moved
		if done {
			break
		}
	}
	if total > 0 {
		s.log.Warn("the routes changed: queued messages moved to the route their address now maps to",
			"moved", total)
	}
	return nil
}
