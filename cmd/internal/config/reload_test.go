package config

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOverridesReadAgain(t *testing.T) {
	dir, ca, pw := testFiles(t)
	name := filepath.Join(dir, "shadowgw.conf")
	writeFile(t, name, "[edge]\nlisten = 127.0.0.1:1\ncredit = 9\n[log]\nlevel = warn\n", 0o644)

	var f Flags
	fs := flag.NewFlagSet("shadowgw", flag.ContinueOnError)
	f.Register(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:2", "--uplink", "amqps://b.example", "--uplink-ca", ca,
		"--uplink-user", "gw", "--uplink-password-file", pw, "--metrics="}); err != nil {
		t.Fatal(err)
	}
	c, err := Check(name, f)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Overrides()
	for _, o := range overrides {
		g, w := *o.value(&got), *o.value(&f)
		switch {
		case (g == nil) != (w == nil):
			t.Errorf("--%s: Overrides() has %v, want %v", o.flag, g, w)
		case g != nil && *g != *w:
			t.Errorf("--%s: Overrides() = %q, want %q", o.flag, *g, *w)
		}
	}

	// The file changes; the flags still win over it.
	writeFile(t, name, "[edge]\nlisten = 127.0.0.1:3\ncredit = 10\n[log]\nlevel = debug\n[metrics]\nlisten = 127.0.0.1:4\n", 0o644)
	again, err := Check(c.File(), c.Overrides())
	if err != nil {
		t.Fatal(err)
	}
	if again.Edge.Listen != "127.0.0.1:2" || again.Metrics.Listen != "" || again.Uplink.URL != "amqps://b.example" {
		t.Errorf("flags lost on reload: listen %q, metrics %q, uplink %q", again.Edge.Listen, again.Metrics.Listen, again.Uplink.URL)
	}
	if again.Edge.Credit != 10 || again.Log.Level != "debug" {
		t.Errorf("file not read again: credit %d, level %q", again.Edge.Credit, again.Log.Level)
	}
	want := []string{"[edge] credit", "[log] level"}
	if got := Changes(c, again); !slices.Equal(got, want) {
		t.Errorf("Changes = %q, want %q", got, want)
	}
}

func TestOverridesNone(t *testing.T) {
	c, err := parseText("[edge]\nlisten = 127.0.0.1:1\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Overrides(); got != (Flags{}) {
		t.Errorf("Overrides() of a file without flags = %+v, want none", got)
	}
}

func TestChanges(t *testing.T) {
	const other = "pbkdf2-sha256$300$MDEyMzQ1Njc4OWFiY2RlZg$AAAArRTjO+Cudy/eCXGQseczxKzQfoeGNe/jGuieQIc"
	base := "[edge]\nlisten = 127.0.0.1:1\n[device \"a\"]\npassword-hash = " + testHash + "\n[device \"b\"]\npassword-hash = " + testHash + "\n"
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"same", base, nil},
		{"same, reordered and commented", "# again\n[device \"b\"]\npassword-hash = " + testHash + "\n[device \"a\"]\npassword-hash = " + testHash + "\n[edge]\nlisten = 127.0.0.1:1\n", nil},
		{"values", base + "[store]\nmax-delay = 1ms\n[uplink]\nurl = amqps://x.example\n[metrics]\nlisten =\n",
			[]string{"[store] max-delay", "[uplink] url", "[metrics] listen"}},
		{"device added, removed, rehashed", "[edge]\nlisten = 127.0.0.1:1\n[device \"c\"]\npassword-hash = " + testHash + "\n[device \"a\"]\npassword-hash = " + other + "\n",
			[]string{`[device "c"]`, `[device "a"] password-hash`, `[device "b"]`}},
		{"device targets", strings.Replace(base, "[device \"a\"]\n", "[device \"a\"]\ntargets = x, y*\n", 1),
			[]string{`[device "a"] targets`}},
		{"input added", base + "[input \"t\"]\nkind = ds18b20\n", []string{`[input "t"]`}},
		{"route added", base + "[route \"r\"]\naddresses = r/*\n", []string{`[route "r"]`}},
	}
	old, err := parseText(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseText(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got := Changes(old, c)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Changes = %q, want %q", got, tt.want)
			}
			if strings.Contains(strings.Join(got, " "), "pbkdf2") {
				t.Errorf("Changes shows a hash: %q", got)
			}
		})
	}
}
