package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testHash is a valid hash of "correct horse" (see package credential's tests).
const testHash = "pbkdf2-sha256$300$MDEyMzQ1Njc4OWFiY2RlZg$pEpCrRTjO+Cudy/eCXGQseczxKzQfoeGNe/jGuieQIc"

// errorLines returns the lines of err's message, or nil for a nil error.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func parseText(text string) (Config, error) {
	c, errs := parse("shadowgw.conf", []byte(text))
	return c, errs.orNil()
}

func TestLoadExample(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "shadowgw.conf"))
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	want := Default()
	want.Uplink = Uplink{
		URL:           "amqps://cloud.example.com:5671",
		CA:            "/etc/shadowgw/ca.pem",
		User:          "gateway",
		PasswordFile:  "/etc/shadowgw/uplink.password",
		AddressPrefix: "/queue/",
		InFlight:      256,
		ReconnectMin:  time.Second,
		ReconnectMax:  time.Minute,
	}
	want.Uplink.SourceAnnotation = "x-opt-shadowgw-source"
	want.Uplink.AddressTemplate = "{address}.{device}"
	want.Store.Dir = filepath.Join("testdata", "shadowgw-data")
	want.Devices = []Device{{Name: "sensor-1", PasswordHash: testHash}}
	if got := c.Edge; !reflect.DeepEqual(got, want.Edge) {
		t.Errorf("Edge = %+v, want %+v", got, want.Edge)
	}
	if got := c.Store; got != want.Store {
		t.Errorf("Store = %+v, want %+v", got, want.Store)
	}
	if got := c.Uplink; !reflect.DeepEqual(got, want.Uplink) {
		t.Errorf("Uplink = %+v, want %+v", got, want.Uplink)
	}
	if !reflect.DeepEqual(c.Devices, want.Devices) {
		t.Errorf("Devices = %+v, want %+v", c.Devices, want.Devices)
	}
	if c.Log != want.Log {
		t.Errorf("Log = %+v, want %+v", c.Log, want.Log)
	}
	if c.Metrics != want.Metrics {
		t.Errorf("Metrics = %+v, want %+v", c.Metrics, want.Metrics)
	}
	if c.File() != filepath.Join("testdata", "shadowgw.conf") {
		t.Errorf("File() = %q", c.File())
	}
}

func TestLoadMissingFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "nope.conf")
	_, err := Load(name)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), name) {
		t.Errorf("Load(missing) error = %v, want a not-exist error naming %s", err, name)
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(t *testing.T, c Config)
	}{
		{
			name: "empty file keeps defaults",
			text: "",
			check: func(t *testing.T, c Config) {
				d := Default()
				if !reflect.DeepEqual(c.Edge, d.Edge) || c.Store != d.Store || !reflect.DeepEqual(c.Uplink, d.Uplink) || c.Log != d.Log || len(c.Devices) != 0 {
					t.Errorf("got %+v, want the defaults", c)
				}
			},
		},
		{
			name: "comments and blank lines",
			text: "# comment\n; comment\n   # indented comment\n\n\t\n[edge] # after header\nlisten = 0.0.0.0:5673 ; inline\n",
			check: func(t *testing.T, c Config) {
				if c.Edge.Listen != "0.0.0.0:5673" {
					t.Errorf("listen = %q, want %q", c.Edge.Listen, "0.0.0.0:5673")
				}
			},
		},
		{
			name: "quotes and inline comments",
			text: `[uplink]
address-prefix = "/queue/#a; b"   # comment
user = gate#way;x
server-name = "  spaced  " ; comment
url = a "b c"  d   # value with inner blanks
password-file = "with \"quote\" and \\ backslash"
ca = "tab\there"
`,
			check: func(t *testing.T, c Config) {
				u := c.Uplink
				for _, f := range []struct{ name, got, want string }{
					{"address-prefix", u.AddressPrefix, "/queue/#a; b"},
					{"user", u.User, "gate#way;x"},
					{"server-name", u.ServerName, "  spaced  "},
					{"url", u.URL, "a b c  d"},
					{"password-file", u.PasswordFile, `with "quote" and \ backslash`},
					{"ca", u.CA, "tab\there"},
				} {
					if f.got != f.want {
						t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
					}
				}
			},
		},
		{
			name: "empty values",
			text: "[uplink]\nserver-name =\nurl = # nothing\naddress-prefix = \"\"\n",
			check: func(t *testing.T, c Config) {
				if c.Uplink.ServerName != "" || c.Uplink.URL != "" || c.Uplink.AddressPrefix != "" {
					t.Errorf("got %+v, want empty values", c.Uplink)
				}
			},
		},
		{
			name: "CRLF line endings and BOM",
			text: "\uFEFF[edge]\r\nlisten = 10.0.0.1:5672\r\nallow-anonymous = false\r\n\r\n[device \"a\"]\r\npassword-hash = " + testHash + "\r\n",
			check: func(t *testing.T, c Config) {
				if c.Edge.Listen != "10.0.0.1:5672" || c.Edge.AllowAnonymous {
					t.Errorf("edge = %+v", c.Edge)
				}
				if len(c.Devices) != 1 || c.Devices[0].PasswordHash != testHash {
					t.Errorf("devices = %+v", c.Devices)
				}
			},
		},
		{
			name: "types and units",
			text: "[edge]\nmax-frame-size = 4 KiB\nmax-message-size = 2MiB\nidle-timeout = 1m30s\ncredit = 10\n" +
				"[store]\nmax-batch = 100\nmax-delay = 10ms\n[uplink]\nin-flight = 7\n",
			check: func(t *testing.T, c Config) {
				e := c.Edge
				if e.MaxFrameSize != 4096 || e.MaxMessageSize != 2<<20 || e.IdleTimeout != 90*time.Second || e.Credit != 10 {
					t.Errorf("edge = %+v", e)
				}
				if c.Store.MaxBatch != 100 || c.Store.MaxDelay != 10*time.Millisecond || c.Uplink.InFlight != 7 {
					t.Errorf("store = %+v, uplink = %+v", c.Store, c.Uplink)
				}
			},
		},
		{
			name: "repeated sections and devices in order",
			text: "[edge]\nlisten = a:1\n[device \"x\"]\npassword-hash = h1\n[edge]\ncredit = 3\n" +
				"[device \"y.z@w\"]\npassword-hash = h2\n[device \"x\"]\n",
			check: func(t *testing.T, c Config) {
				if c.Edge.Listen != "a:1" || c.Edge.Credit != 3 {
					t.Errorf("edge = %+v", c.Edge)
				}
				want := []Device{{Name: "x", PasswordHash: "h1"}, {Name: "y.z@w", PasswordHash: "h2"}, {Name: "x"}}
				if !reflect.DeepEqual(c.Devices, want) {
					t.Errorf("devices = %+v, want %+v", c.Devices, want)
				}
			},
		},
		{
			name: "escaped device name",
			text: `[device "a \"b\" \\c"]` + "\n",
			check: func(t *testing.T, c Config) {
				if len(c.Devices) != 1 || c.Devices[0].Name != `a "b" \c` {
					t.Errorf("devices = %+v", c.Devices)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseText(tt.text)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParsePaths(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "abs.pem")
	text := "[store]\ndir = data\n[uplink]\nca = " + abs + "\npassword-file = ../secret\n"
	c, errs := parse(filepath.Join("etc", "shadowgw", "shadowgw.conf"), []byte(text))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, f := range []struct{ name, got, want string }{
		{"dir", c.Store.Dir, filepath.Join("etc", "shadowgw", "data")},
		{"ca", c.Uplink.CA, abs},
		{"password-file", c.Uplink.PasswordFile, filepath.Join("etc", "secret")},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	// The default data directory is relative to the working directory, not the file.
	c, errs = parse(filepath.Join("etc", "shadowgw", "shadowgw.conf"), nil)
	if len(errs) > 0 || c.Store.Dir != "./shadowgw-data" {
		t.Errorf("default dir = %q, %v; want ./shadowgw-data", c.Store.Dir, errs)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"key before any section", "listen = x:1\n[edge]\n",
			[]string{"shadowgw.conf:1: listen: key outside of any section; put it under a [SECTION] header"}},
		{"unknown section", "[edg]\nlisten = x\n",
			[]string{`shadowgw.conf:1: unknown section [edg] (did you mean "edge"?)`}},
		{"unknown section far from any", "[network]\n",
			[]string{`shadowgw.conf:1: unknown section [network]`}},
		{"unknown plural section", "[devices \"a\"]\n",
			[]string{`shadowgw.conf:1: unknown section [devices] (did you mean "device"?)`}},
		{"unknown key with suggestion", "[edge]\nlistn = x:1\n",
			[]string{`shadowgw.conf:2: [edge] unknown key "listn" (did you mean "listen"?)`}},
		{"upper case key", "[edge]\nListen = x:1\n",
			[]string{`shadowgw.conf:2: [edge] unknown key "Listen" (did you mean "listen"?)`}},
		{"key of another section", "[edge]\ndir = /tmp\n",
			[]string{`shadowgw.conf:2: [edge] unknown key "dir" (it belongs in [store])`}},
		{"unknown device key", "[device \"a\"]\npasword-hash = x\n",
			[]string{`shadowgw.conf:2: [device "a"] unknown key "pasword-hash" (did you mean "password-hash"?)`}},
		{"uplink password", "[uplink]\npassword = hunter2\n",
			[]string{"shadowgw.conf:2: [uplink] password: the password is never in this file: put it in a file of its own and set password-file"}},
		{"device password", "[device \"a\"]\npassword = hunter2\n",
			[]string{"shadowgw.conf:2: [device \"a\"] password: the password is never in this file: set password-hash to the output of `shadowgw passwd`"}},
		{"duplicate key", "[edge]\nlisten = a:1\n\n[edge]\nlisten = b:2\n",
			[]string{"shadowgw.conf:5: [edge] listen: duplicate key (first set on line 2)"}},
		{"duplicate device key", "[device \"a\"]\npassword-hash = x\npassword-hash = y\n",
			[]string{`shadowgw.conf:3: [device "a"] password-hash: duplicate key (first set on line 2)`}},
		{"missing equals", "[edge]\nlisten 1.2.3.4:5\n",
			[]string{`shadowgw.conf:2: [edge] listen: want "key = value", missing "="`}},
		{"no key", "[edge]\n= 1\n",
			[]string{`shadowgw.conf:2: [edge] want "key = value", got "= 1"`}},
		{"unterminated header", "[edge\nlisten = x\n",
			[]string{`shadowgw.conf:1: malformed section header [edge: want [NAME] or [NAME "SUBNAME"]`}},
		{"empty header", "[]\n",
			[]string{"shadowgw.conf:1: section header without a name"}},
		{"text after header", "[edge] listen = x:1\n",
			[]string{`shadowgw.conf:1: unexpected text after section header: "listen = x:1"`}},
		{"old-style subsection", "[device.a]\n",
			[]string{`shadowgw.conf:1: unknown section [device.a]: write [device "a"]`}},
		{"device without name", "[device]\npassword-hash = x\n",
			[]string{`shadowgw.conf:1: [device] needs a device name: [device "NAME"]`}},
		{"named plain section", "[edge \"x\"]\nlisten = x\n",
			[]string{`shadowgw.conf:1: [edge] section takes no name, got "x"`}},
		{"unterminated device name", "[device \"a]\n",
			[]string{"shadowgw.conf:1: section header: unterminated or malformed quoted name"}},
		{"bad bool", "[edge]\nallow-anonymous = yes\n",
			[]string{`shadowgw.conf:2: [edge] allow-anonymous: want true or false, got "yes"`}},
		{"bad int", "[edge]\ncredit = lots\n",
			[]string{`shadowgw.conf:2: [edge] credit: want a non-negative whole number, got "lots"`}},
		{"negative int", "[uplink]\nin-flight = -1\n",
			[]string{`shadowgw.conf:2: [uplink] in-flight: want a non-negative whole number, got "-1"`}},
		{"int too large", "[edge]\ncredit = 4294967296\n",
			[]string{"shadowgw.conf:2: [edge] credit: must be at most 4294967295, got 4294967296"}},
		{"duration without unit", "[edge]\nidle-timeout = 60\n",
			[]string{`shadowgw.conf:2: [edge] idle-timeout: want a duration such as 500ms, 30s or 5m, got "60"`}},
		{"decimal size unit", "[edge]\nmax-message-size = 1MB\n",
			[]string{`shadowgw.conf:2: [edge] max-message-size: want a size in bytes, optionally with a unit of KiB, MiB or GiB (1024-based), got "1MB"`}},
		{"frame size above 32 bits", "[edge]\nmax-frame-size = 4GiB\n",
			[]string{"shadowgw.conf:2: [edge] max-frame-size: must be at most 4294967295, got 4GiB"}},
		{"size overflow", "[edge]\nmax-message-size = 99999999999999GiB\n",
			[]string{"shadowgw.conf:2: [edge] max-message-size: size 99999999999999GiB is too large"}},
		{"unterminated quote", "[uplink]\nuser = \"gateway\n",
			[]string{`shadowgw.conf:2: [uplink] user: unterminated or malformed quoted value (escapes are \" \\ \n \t)`}},
		{"unknown escape", "[uplink]\nuser = \"a\\qb\"\n",
			[]string{`shadowgw.conf:2: [uplink] user: unterminated or malformed quoted value (escapes are \" \\ \n \t)`}},
		{"invalid UTF-8", "[uplink]\nuser = \xff\xfe\n",
			[]string{"shadowgw.conf:2: line is not valid UTF-8"}},
		{"keys under a bad header are skipped", "[edge \"x\"]\nbogus = 1\n[bogus]\nmore = 2\n",
			[]string{
				`shadowgw.conf:1: [edge] section takes no name, got "x"`,
				`shadowgw.conf:3: unknown section [bogus]`,
			}},
		{"several errors at once", "listen = x\r\n[edge]\r\nlistn = 1\r\ncredit = -5\r\n[log]\r\nlevel = info\r\nlevel = debug\r\n[uplnk]\r\n",
			[]string{
				"shadowgw.conf:1: listen: key outside of any section; put it under a [SECTION] header",
				`shadowgw.conf:3: [edge] unknown key "listn" (did you mean "listen"?)`,
				`shadowgw.conf:4: [edge] credit: want a non-negative whole number, got "-5"`,
				"shadowgw.conf:7: [log] level: duplicate key (first set on line 6)",
				`shadowgw.conf:8: unknown section [uplnk] (did you mean "uplink"?)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseText(tt.text)
			if got := errorLines(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			var errs Errors
			if err != nil && !errors.As(err, &errs) {
				t.Errorf("error %T is not Errors", err)
			}
		})
	}
}

func TestLoadReturnsErrors(t *testing.T) {
	name := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(name, []byte("[edge]\ncredit = x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(name)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("Load error = %v, want one Errors entry", err)
	}
	if e := errs[0]; e.File != name || e.Line != 2 || e.Section != "edge" || e.Field != "credit" {
		t.Errorf("error = %+v, want file %s line 2 [edge] credit", e, name)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"512B", 512, true},
		{"64KiB", 64 << 10, true},
		{"64 KiB", 64 << 10, true},
		{"1MiB", 1 << 20, true},
		{"3GiB", 3 << 30, true},
		{"16777215GiB", 16777215 << 30, true},
		{"17179869184GiB", 0, false}, // 2^64
		{"", 0, false},
		{"KiB", 0, false},
		{"1.5MiB", 0, false},
		{"-1", 0, false},
		{"1kib", 0, false},
		{"1K", 0, false},
		{"1 GB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok {
			if back, err := parseSize(formatSize(got)); err != nil || back != got {
				t.Errorf("parseSize(formatSize(%d)) = %d, %v", got, back, err)
			}
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"listn", ` (did you mean "listen"?)`},
		{"max-frame-szie", ` (did you mean "max-frame-size"?)`},
		{"credits", ` (did you mean "credit"?)`},
		{"x", ""},
		{"frame-size", ""},
	}
	names := []string{"listen", "max-frame-size", "credit"}
	for _, tt := range tests {
		if got := suggest(tt.in, names); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
