package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const routesText = `[store]
when-full = drop-oldest
default-ttl = 24h

[route "alarms"]
addresses = alarms/*, panic
priority = 10
when-full = backpressure

[route "telemetry"]
addresses = telemetry, sensors/*
priority = -2
max-bytes = 64MiB
max-messages = 50000
default-ttl = 0s

[route "default"]
priority = -5
max-messages = 1000
`

func TestParseRoutes(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "shadowgw.conf")
	writeFile(t, name, routesText, 0o644)
	c, err := Check(name, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	zero := time.Duration(0)
	want := []Route{
		{Name: "alarms", Addresses: []string{"alarms/*", "panic"}, Priority: 10, WhenFull: "backpressure"},
		{Name: "telemetry", Addresses: []string{"telemetry", "sensors/*"}, Priority: -2, MaxBytes: 64 << 20, MaxMessages: 50000, DefaultTTL: &zero},
		{Name: "default", Priority: -5, MaxMessages: 1000},
	}
	if !reflect.DeepEqual(c.Routes, want) {
		t.Errorf("Routes =\n%+v\nwant\n%+v", c.Routes, want)
	}
	// Unset when-full and default-ttl are [store]'s.
	for _, tt := range []struct {
		route    int
		whenFull string
		ttl      time.Duration
	}{{0, "backpressure", 24 * time.Hour}, {1, "drop-oldest", 0}, {2, "drop-oldest", 24 * time.Hour}} {
		r := c.Routes[tt.route]
		if got := c.EffectiveWhenFull(r); got != tt.whenFull {
			t.Errorf("route %s: EffectiveWhenFull = %q, want %q", r.Name, got, tt.whenFull)
		}
		if got := c.EffectiveDefaultTTL(r); got != tt.ttl {
			t.Errorf("route %s: EffectiveDefaultTTL = %v, want %v", r.Name, got, tt.ttl)
		}
	}
}

func TestRoutesRoundTrip(t *testing.T) {
	c, err := parseText(routesText)
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	back, err := parseText(s)
	if err != nil {
		t.Fatalf("parse(String()): %v\n%s", err, s)
	}
	if !reflect.DeepEqual(back.Routes, c.Routes) {
		t.Errorf("round trip changed the routes:\n%+v\nwant\n%+v", back.Routes, c.Routes)
	}
	for _, want := range []string{
		"[route \"alarms\"]\naddresses = alarms/*, panic\npriority = 10\nmax-bytes = 0\nmax-messages = 0\nwhen-full = backpressure\ndefault-ttl =\n",
		"[route \"telemetry\"]\naddresses = telemetry, sensors/*\npriority = -2\nmax-bytes = 64MiB\nmax-messages = 50000\nwhen-full =\ndefault-ttl = 0s\n",
		"[route \"default\"]\npriority = -5\nmax-bytes = 0\nmax-messages = 1000\nwhen-full =\ndefault-ttl =\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks\n%s\nin\n%s", want, s)
		}
	}
}

func TestRouteErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"good", "[route \"a\"]\naddresses = a/*\n[route \"b.c_d-1\"]\naddresses = a/b*, a\n", nil},
		{"no name", "[route]\naddresses = a\n",
			[]string{`shadowgw.conf:1: [route] needs a route name: [route "NAME"]`}},
		{"bad name", "[route \"a/b\"]\naddresses = a\n",
			[]string{`shadowgw.conf:1: [route "a/b"] route name may contain only letters, digits and . _ -, got '/'`}},
		{"empty name", "[route \"\"]\naddresses = a\n",
			[]string{`shadowgw.conf:1: [route ""] route name must be 1 to 64 characters`}},
		{"long name", "[route \"" + strings.Repeat("r", 65) + "\"]\naddresses = a\n",
			[]string{`shadowgw.conf:1: [route "` + strings.Repeat("r", 65) + `"] route name must be 1 to 64 characters`}},
		{"old subsection syntax", "[route.alarms]\n",
			[]string{`shadowgw.conf:1: unknown section [route.alarms]: write [route "alarms"]`}},
		{"unknown key", "[route \"a\"]\naddresses = a\npriorty = 1\n",
			[]string{`shadowgw.conf:3: [route "a"] unknown key "priorty" (did you mean "priority"?)`}},
		{"route key in [store]", "[store]\naddresses = a\n",
			[]string{`shadowgw.conf:2: [store] unknown key "addresses" (it belongs in a [route "NAME"] section)`}},
		{"duplicate key", "[route \"a\"]\naddresses = a\naddresses = b\n",
			[]string{`shadowgw.conf:3: [route "a"] addresses: duplicate key (first set on line 2)`}},
		{"configured twice", "[route \"a\"]\naddresses = a\n\n[route \"a\"]\npriority = 3\n",
			[]string{`shadowgw.conf:4: [route "a"] configured twice (first on line 1): put its keys in one section`}},
		{"no addresses", "[route \"a\"]\npriority = 3\n",
			[]string{`shadowgw.conf:1: [route "a"] addresses: missing: list the target addresses the route takes, such as alarms/* (the default route takes the rest)`}},
		{"empty addresses", "[route \"a\"]\naddresses = ,\n",
			[]string{`shadowgw.conf:2: [route "a"] addresses: missing: list the target addresses the route takes, such as alarms/* (the default route takes the rest)`}},
		{"addresses on default", "[route \"default\"]\naddresses = x\n",
			[]string{`shadowgw.conf:2: [route "default"] addresses: the default route takes every address no other route matches; it has no addresses`}},
		{"default configured", "[route \"default\"]\npriority = -1\nmax-bytes = 1MiB\nwhen-full = drop-oldest\ndefault-ttl = 1h\n", nil},
		{"same pattern in two routes", "[route \"a\"]\naddresses = x, alarms/*\n[route \"b\"]\npriority = 1\naddresses = alarms/*\n",
			[]string{`shadowgw.conf:5: [route "b"] addresses: "alarms/*" is already taken by [route "a"] (line 2)`}},
		{"same pattern twice in a route", "[route \"a\"]\naddresses = x, x\n",
			[]string{`shadowgw.conf:2: [route "a"] addresses: "x" is listed twice`}},
		{"star alone", "[route \"a\"]\naddresses = *\n",
			[]string{`shadowgw.conf:2: [route "a"] addresses: "*" takes every address: leave such messages to the default route, or configure [route "default"]`}},
		{"star inside", "[route \"a\"]\naddresses = a*b\n",
			[]string{`shadowgw.conf:2: [route "a"] addresses: "a*b": '*' may only end an address (a prefix)`}},
		{"control character", "[route \"a\"]\naddresses = \"a\\tb\"\n",
			[]string{`shadowgw.conf:2: [route "a"] addresses: "a\tb" contains a control character`}},
		{"bad priority", "[route \"a\"]\naddresses = a\npriority = high\n",
			[]string{`shadowgw.conf:3: [route "a"] priority: want a whole number such as 10 or -1 (higher is forwarded first), got "high"`}},
		{"priority out of range", "[route \"a\"]\naddresses = a\npriority = 3000000000\n",
			[]string{`shadowgw.conf:3: [route "a"] priority: must be from -2147483648 to 2147483647, got 3000000000`}},
		{"bad max-bytes", "[route \"a\"]\naddresses = a\nmax-bytes = 1MB\n",
			[]string{`shadowgw.conf:3: [route "a"] max-bytes: want a size in bytes, optionally with a unit of KiB, MiB or GiB (1024-based), got "1MB"`}},
		{"negative max-messages", "[route \"a\"]\naddresses = a\nmax-messages = -1\n",
			[]string{`shadowgw.conf:3: [route "a"] max-messages: want a non-negative whole number, got "-1"`}},
		{"bad when-full", "[route \"a\"]\naddresses = a\nwhen-full = drop-newest\n",
			[]string{`shadowgw.conf:3: [route "a"] when-full: must be backpressure or drop-oldest (or empty for [store] when-full), got "drop-newest"`}},
		{"bad default-ttl", "[route \"a\"]\naddresses = a\ndefault-ttl = 1 day\n",
			[]string{`shadowgw.conf:3: [route "a"] default-ttl: want a duration such as 500ms, 30s or 5m, got "1 day"`}},
		{"negative default-ttl", "[route \"a\"]\naddresses = a\ndefault-ttl = -1s\n",
			[]string{`shadowgw.conf:3: [route "a"] default-ttl: must not be negative, got -1s`}},
		{"direct", "[route \"a\"]\naddresses = a\nmode = direct\n[route \"b\"]\naddresses = b\nmode = stored\n", nil},
		{"bad mode", "[route \"a\"]\naddresses = a\nmode = link\n",
			[]string{`shadowgw.conf:3: [route "a"] mode: must be stored or direct, got "link"`}},
		{"queue keys on a direct route", "[route \"a\"]\naddresses = a\nmode = direct\nmax-bytes = 1MiB\npriority = 3\nwhen-full = backpressure\ndefault-ttl = 1h\nmax-messages = 5\n",
			[]string{
				`shadowgw.conf:4: [route "a"] max-bytes: has no meaning for a direct route (mode = direct): nothing of it is queued; remove it`,
				`shadowgw.conf:6: [route "a"] when-full: has no meaning for a direct route (mode = direct): nothing of it is queued; remove it`,
				`shadowgw.conf:7: [route "a"] default-ttl: has no meaning for a direct route (mode = direct): nothing of it is queued; remove it`,
				`shadowgw.conf:8: [route "a"] max-messages: has no meaning for a direct route (mode = direct): nothing of it is queued; remove it`,
			}},
		{"several at once, in line order", "[route \"a\"]\naddresses = a\n[route \"b\"]\naddresses = a\nwhen-full = x\n[route \"default\"]\naddresses = d\n",
			[]string{
				`shadowgw.conf:4: [route "b"] addresses: "a" is already taken by [route "a"] (line 2)`,
				`shadowgw.conf:5: [route "b"] when-full: must be backpressure or drop-oldest (or empty for [store] when-full), got "x"`,
				`shadowgw.conf:7: [route "default"] addresses: the default route takes every address no other route matches; it has no addresses`,
			}},
	}
	t.Chdir(t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, "shadowgw.conf", tt.text, 0o644)
			_, err := Check("shadowgw.conf", Flags{})
			if got := errorLines(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidateRoutesWithoutPositions(t *testing.T) {
	// Routes built in code have no file: errors name only section and field.
	c := Default()
	c.Routes = []Route{{Name: "a", Addresses: []string{"x"}}, {Name: "b", Addresses: []string{"x"}}, {Name: "a"}}
	got := errorLines(c.Validate())
	want := []string{
		`[route "b"] addresses: "x" is already taken by [route "a"]`,
		`[route "a"] configured twice`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRouteChanges(t *testing.T) {
	old, err := parseText(routesText)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"same", routesText, nil},
		{"budget and policy", strings.Replace(strings.Replace(routesText, "max-messages = 50000", "max-messages = 10", 1),
			"priority = 10\nwhen-full = backpressure", "priority = 10\nwhen-full = drop-oldest", 1),
			[]string{`[route "alarms"] when-full`, `[route "telemetry"] max-messages`}},
		{"default-ttl back to [store]'s", strings.Replace(routesText, "default-ttl = 0s\n", "", 1),
			[]string{`[route "telemetry"] default-ttl`}},
		{"renamed", strings.Replace(routesText, `[route "telemetry"]`, `[route "sensors"]`, 1),
			[]string{`[route "sensors"]`, `[route "telemetry"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseText(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := Changes(old, c); !slices.Equal(got, tt.want) {
				t.Errorf("Changes = %q, want %q", got, tt.want)
			}
		})
	}
}
