package config

import "flag"

// Flags are command-line overrides of configuration values. A nil field was not given on
// the command line; a non-nil one replaces the value from the file, even when empty
// (--uplink "" turns the uplink off). Paths given as flags are relative to the working
// directory.
type Flags struct {
	Listen             *string // --listen ADDR: [edge] listen
	Data               *string // --data DIR: [store] dir
	Uplink             *string // --uplink URL: [uplink] url
	UplinkCA           *string // --uplink-ca FILE: [uplink] ca
	UplinkUser         *string // --uplink-user USER: [uplink] user
	UplinkPasswordFile *string // --uplink-password-file FILE: [uplink] password-file
	Metrics            *string // --metrics ADDR: [metrics] listen
}

// overrides ties each flag to its field in Flags and its key in Config.
var overrides = []struct {
	flag, section, field, usage string
	value                       func(*Flags) **string
	target                      func(*Config) *string
}{
	{"listen", "edge", "listen", "accept devices on `ADDR` (host:port)",
		func(f *Flags) **string { return &f.Listen }, func(c *Config) *string { return &c.Edge.Listen }},
	{"data", "store", "dir", "keep the message store in `DIR`",
		func(f *Flags) **string { return &f.Data }, func(c *Config) *string { return &c.Store.Dir }},
	{"uplink", "uplink", "url", "forward to the broker at `URL` (amqps://HOST[:PORT]; empty: no uplink)",
		func(f *Flags) **string { return &f.Uplink }, func(c *Config) *string { return &c.Uplink.URL }},
	{"uplink-ca", "uplink", "ca", "verify the broker with the PEM CA certificates in `FILE`",
		func(f *Flags) **string { return &f.UplinkCA }, func(c *Config) *string { return &c.Uplink.CA }},
	{"uplink-user", "uplink", "user", "authenticate to the broker as `USER`",
		func(f *Flags) **string { return &f.UplinkUser }, func(c *Config) *string { return &c.Uplink.User }},
	{"uplink-password-file", "uplink", "password-file", "read the broker password from `FILE`",
		func(f *Flags) **string { return &f.UplinkPasswordFile }, func(c *Config) *string { return &c.Uplink.PasswordFile }},
	{"metrics", "metrics", "listen", "serve metrics, health and status over HTTP on `ADDR` (host:port; empty: off)",
		func(f *Flags) **string { return &f.Metrics }, func(c *Config) *string { return &c.Metrics.Listen }},
}

// Register defines the override flags on fs; after fs.Parse, f holds the flags given.
func (f *Flags) Register(fs *flag.FlagSet) {
	for _, o := range overrides {
		fs.Func(o.flag, o.usage+" (overrides ["+o.section+"] "+o.field+")", func(s string) error {
			*o.value(f) = &s
			return nil
		})
	}
}

// Apply replaces c's values with the flags that were given, and remembers that they came
// from flags so that Validate names the flag.
func (f Flags) Apply(c *Config) {
	var origins map[string]origin
	for _, o := range overrides {
		v := *o.value(&f)
		if v == nil {
			continue
		}
		if origins == nil {
			origins = c.cloneOrigins() // copies of c may share the old map
		}
		*o.target(c) = *v
		origins[key(o.section, o.field)] = origin{flag: o.flag}
	}
	if origins != nil {
		c.origins = origins
	}
}
