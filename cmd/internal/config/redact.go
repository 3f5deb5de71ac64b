package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// redacted replaces secrets in String and LogValue.
const redacted = "<redacted>"

// String returns the configuration in the file format, every value written out, with
// password hashes and any password in the uplink URL redacted. It is meant for logs and
// `shadowgw check`; the output parses back to the same values except the redacted ones.
func (c Config) String() string {
	var b strings.Builder
	for i, s := range sections {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[%s]\n", s.name)
		for _, f := range s.fields {
			v := f.get(&c)
			if s.name == "uplink" && f.name == "url" {
				v = redactURL(v)
			}
			writeKeyValue(&b, f.name, v)
		}
	}
	for _, d := range c.Devices {
		fmt.Fprintf(&b, "\n[%s %s]\n", deviceSection, quote(d.Name))
		for _, f := range deviceFields {
			v := f.get(&d)
			if f.name == "password-hash" && v != "" {
				v = redacted
			}
			writeKeyValue(&b, f.name, v)
		}
	}
	for _, in := range c.Inputs {
		fmt.Fprintf(&b, "\n[%s %s]\n", inputSection, quote(in.Name))
		for _, f := range inputFields {
			v := f.get(&in)
			if in.Kind == "" && f.name != "kind" || !f.applies(in.Kind) || f.list && v == "" {
				continue
			}
			writeKeyValue(&b, f.name, v)
		}
	}
	for _, r := range c.Routes {
		fmt.Fprintf(&b, "\n[%s %s]\n", routeSection, quote(r.Name))
		for _, f := range routeFields {
			if f.name == "addresses" && r.Name == defaultRouteName && len(r.Addresses) == 0 {
				continue // it takes the rest and may have none
			}
			if f.name == "mode" && r.Mode == "" || r.Direct() && queueOnly(f.name) {
				continue // stored, the default; a direct route queues nothing
			}
			writeKeyValue(&b, f.name, f.get(&r))
		}
	}
	return b.String()
}

// LogValue summarises the configuration for slog, without secrets.
func (c Config) LogValue() slog.Value {
	uplink := "none"
	if c.Uplink.Enabled() {
		uplink = redactURL(c.Uplink.URL)
	}
	return slog.GroupValue(
		slog.String("file", c.file),
		slog.String("listen", c.Edge.Listen),
		slog.Bool("allow_anonymous", c.Edge.AllowAnonymous),
		slog.Int("devices", len(c.Devices)),
		slog.Int("inputs", len(c.Inputs)),
		slog.Int("routes", len(c.Routes)),
		slog.String("data", c.Store.Dir),
		slog.String("uplink", uplink),
		slog.String("uplink_user", c.Uplink.User),
		slog.String("log_level", c.Log.Level),
	)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return redacted // unparsable, and may hold credentials
		}
		return s
	}
	if _, has := u.User.Password(); has {
		return u.Redacted()
	}
	return s
}

func writeKeyValue(b *strings.Builder, k, v string) {
	b.WriteString(k + " =")
	if v != "" {
		b.WriteString(" " + quoteIfNeeded(v))
	}
	b.WriteString("\n")
}

// quoteIfNeeded quotes v when parseValue would not return it unchanged.
func quoteIfNeeded(v string) string {
	if strings.ContainsAny(v, "\"#;\n\t") || strings.TrimSpace(v) != v {
		return quote(v)
	}
	return v
}

func quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}
