package config

import (
	"flag"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFlagsOverrideFile(t *testing.T) {
	dir, ca, pw := testFiles(t)
	name := filepath.Join(dir, "shadowgw.conf")
	writeFile(t, name, "[edge]\nlisten = 127.0.0.1:1\ncredit = 9\n[store]\ndir = data\n[uplink]\nurl = amqps://file.example\n", 0o644)

	var f Flags
	fs := flag.NewFlagSet("shadowgw", flag.ContinueOnError)
	f.Register(fs)
	args := []string{"--listen", "127.0.0.1:2", "-data=flagdata", "--uplink", "amqps://flag.example:5999",
		"--uplink-ca", ca, "--uplink-user", "gw", "--uplink-password-file", pw}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	c, err := Check(name, f)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for _, v := range []struct{ name, got, want string }{
		{"listen", c.Edge.Listen, "127.0.0.1:2"},
		{"dir", c.Store.Dir, "flagdata"}, // relative to the working directory, not the file
		{"url", c.Uplink.URL, "amqps://flag.example:5999"},
		{"ca", c.Uplink.CA, ca},
		{"user", c.Uplink.User, "gw"},
		{"password-file", c.Uplink.PasswordFile, pw},
	} {
		if v.got != v.want {
			t.Errorf("%s = %q, want %q", v.name, v.got, v.want)
		}
	}
	if c.Edge.Credit != 9 {
		t.Errorf("credit = %d, want 9 from the file", c.Edge.Credit)
	}
}

func TestFlagsNotGivenKeepFile(t *testing.T) {
	c, err := parseText("[edge]\nlisten = 127.0.0.1:1\n[uplink]\nurl = amqps://file.example\n")
	if err != nil {
		t.Fatal(err)
	}
	var f Flags
	fs := flag.NewFlagSet("shadowgw", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse([]string{"--uplink="}); err != nil {
		t.Fatal(err)
	}
	f.Apply(&c)
	if c.Edge.Listen != "127.0.0.1:1" {
		t.Errorf("listen = %q, want the file's value", c.Edge.Listen)
	}
	if c.Uplink.Enabled() {
		t.Errorf("--uplink= left url = %q, want the uplink turned off", c.Uplink.URL)
	}
}

func TestFlagErrorsNameTheFlag(t *testing.T) {
	dir, _, _ := testFiles(t)
	name := filepath.Join(dir, "shadowgw.conf")
	writeFile(t, name, "[edge]\ncredit = 0\n[uplink]\nurl = amqps://ok.example\n", 0o644)
	missing := filepath.Join(dir, "missing.pem")
	url, listen, ca, metrics := "amqp://b.example", "nope", missing, "9464"
	_, err := Check(name, Flags{Uplink: &url, Listen: &listen, UplinkCA: &ca, Metrics: &metrics})
	want := []string{
		name + ":2: [edge] credit: must be from 1 to 65536, got 0",
		`flag --listen: [edge] listen: want HOST:PORT, got "nope"`,
		`flag --uplink: [uplink] url: scheme must be amqps (TLS), got "amqp"`,
		"flag --uplink-ca: [uplink] ca: open " + missing + ": no such file or directory",
		`flag --metrics: [metrics] listen: want HOST:PORT or empty (off), got "9464"`,
	}
	if got := errorLines(err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestApplyDoesNotChangeCopies(t *testing.T) {
	c, err := parseText("[edge]\nlisten = nope\n")
	if err != nil {
		t.Fatal(err)
	}
	orig := c
	listen := "also-nope"
	Flags{Listen: &listen}.Apply(&c)
	want := `shadowgw.conf:2: [edge] listen: want HOST:PORT, got "nope"`
	if got := orig.Validate(); got == nil || got.Error() != want {
		t.Errorf("copy made before Apply: Validate() = %v, want %q", got, want)
	}
	if got := c.Validate(); got == nil || !strings.HasPrefix(got.Error(), "flag --listen: ") {
		t.Errorf("after Apply: Validate() = %v, want an error naming --listen", got)
	}
}

func TestFlagsUsage(t *testing.T) {
	var f Flags
	fs := flag.NewFlagSet("shadowgw", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Register(fs)
	var names []string
	fs.VisitAll(func(fl *flag.Flag) {
		names = append(names, fl.Name)
		if name, _ := flag.UnquoteUsage(fl); name == "value" {
			t.Errorf("flag --%s has no argument name in its usage %q", fl.Name, fl.Usage)
		}
	})
	want := []string{"data", "listen", "metrics", "uplink", "uplink-ca", "uplink-password-file", "uplink-user"}
	if !slices.Equal(names, want) {
		t.Errorf("flags = %v, want %v", names, want)
	}
}
