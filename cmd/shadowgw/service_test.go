package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
)

// directives returns the non-empty, non-comment lines of a unit file.
func directives(unit string) []string {
	var out []string
	for _, l := range strings.Split(unit, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestServiceUnitMatchesPackage checks that 'shadowgw service install' writes
// the unit the .deb ships: the same directives in the same order once the
// executable, the arguments and the user are filled in as the package has them.
func TestServiceUnitMatchesPackage(t *testing.T) {
	packaged, err := os.ReadFile("../../systemd/shadowgw.service")
	if err != nil {
		t.Fatal(err)
	}
	rendered := strings.NewReplacer(
		"{{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}", "/usr/bin/shadowgw run --config "+defaultConfig,
		"{{UserName}}", serviceName,
	).Replace(systemdUnit)
	if strings.Contains(rendered, "{{") {
		t.Fatalf("systemdUnit uses template fields the test does not fill in:\n%s", rendered)
	}
	got, want := directives(rendered), directives(string(packaged))
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("directive %d: got %q, want %q (systemd/shadowgw.service)", i+1, g, w)
		}
	}
}

func TestServiceConfig(t *testing.T) {
	c := serviceConfig("/opt/shadowgw/shadowgw", "/etc/shadowgw/gw.conf", "gw")
	if got, want := strings.Join(c.Arguments, " "), "run --config /etc/shadowgw/gw.conf"; got != want {
		t.Errorf("arguments: got %q, want %q", got, want)
	}
	if c.Name != "shadowgw" || c.UserName != "gw" || c.Executable != "/opt/shadowgw/shadowgw" {
		t.Errorf("got name %q, user %q, executable %q", c.Name, c.UserName, c.Executable)
	}
	if c.Option["SystemdScript"] != systemdUnit {
		t.Error("the systemd unit is not the package's")
	}
}

func TestServiceUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error output
	}{
		{"no action", nil, "usage: shadowgw service ACTION"},
		{"help", []string{"-h"}, "Flags of install"},
		{"unknown action", []string{"reload"}, `unknown action "reload"`},
		{"extra argument", []string{"status", "now"}, `unexpected argument "now"`},
		{"unknown flag", []string{"install", "--group", "x"}, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := cmdService(tc.args, stdio{nil, &out, &errOut})
			if !errors.Is(err, errUsage) {
				t.Errorf("got %v, want a usage error", err)
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("got output %q, want it to contain %q", errOut.String(), tc.want)
			}
		})
	}
}

func TestServiceInstallChecksConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	conf := t.TempDir() + "/missing.conf"
	err := cmdService([]string{"install", "--config", conf}, stdio{nil, &out, &errOut})
	if err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("got %v, want an error naming the configuration file", err)
	}
}

// TestPackagedConfig checks the .deb's conffile: valid, the data in the unit's
// StateDirectory=, and no uplink, so that a fresh install starts and buffers.
func TestPackagedConfig(t *testing.T) {
	cfg, err := config.Check("../../packaging/shadowgw.conf", config.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Dir != stateDir {
		t.Errorf("[store] dir: got %s, want %s", cfg.Store.Dir, stateDir)
	}
	if cfg.Uplink.Enabled() {
		t.Errorf("[uplink] is enabled: got url %q, want none", cfg.Uplink.URL)
	}
	if w := cfg.Warnings(); len(w) > 0 {
		t.Errorf("warnings: %v", w)
	}
}

// confKeys returns the "[section] key" pairs a configuration text sets or shows
// as a commented-out example ("#key = value", "# key = value").
func confKeys(text string) map[string]bool {
	keys := map[string]bool{}
	section := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "#;"))
		switch {
		case strings.HasPrefix(l, "["):
			section, _, _ = strings.Cut(strings.TrimPrefix(l, "["), "]")
			section, _, _ = strings.Cut(section, " ") // [device "NAME"] → device
		case strings.Contains(l, " = ") || strings.HasSuffix(l, " ="):
			key, _, _ := strings.Cut(l, " =")
			if !strings.ContainsAny(key, " \t") {
				keys["["+section+"] "+key] = true
			}
		}
	}
	return keys
}

// TestPackagedConfigDocumentsEveryKey keeps the conffile a complete reference:
// every key of the test configuration and of the README's configuration block
// appears in it, set or as an example.
func TestPackagedConfigDocumentsEveryKey(t *testing.T) {
	packaged, err := os.ReadFile("../../packaging/shadowgw.conf")
	if err != nil {
		t.Fatal(err)
	}
	have := confKeys(string(packaged))
	testdata, err := os.ReadFile("../internal/config/testdata/shadowgw.conf")
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{"cmd/internal/config/testdata/shadowgw.conf": string(testdata)}
	if readme, err := os.ReadFile("../../README.md"); err == nil {
		if _, block, ok := strings.Cut(string(readme), "## Configuration"); ok {
			if _, block, ok = strings.Cut(block, "```ini\n"); ok {
				block, _, _ = strings.Cut(block, "```")
				sources["README.md"] = block
			}
		}
	}
	for name, text := range sources {
		for k := range confKeys(text) {
			if !have[k] {
				t.Errorf("%s from %s is not in packaging/shadowgw.conf", k, name)
			}
		}
	}
}

// TestPackagedConfigExamples applies every example of the conffile (each
// "#key = value" replaces the key's default above it) and parses the result.
func TestPackagedConfigExamples(t *testing.T) {
	packaged, err := os.ReadFile("../../packaging/shadowgw.conf")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(packaged), "\n") {
		if strings.HasPrefix(l, "#[") || (strings.HasPrefix(l, "#") && strings.Contains(l, " = ") && !strings.HasPrefix(l, "# ")) {
			l = l[1:]
			key, _, _ := strings.Cut(l, " =")
			if n := len(out); n > 0 && strings.HasPrefix(out[n-1], key+" =") {
				out = out[:n-1]
			}
		}
		out = append(out, l)
	}
	path := t.TempDir() + "/examples.conf"
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Errorf("the examples do not parse: %v", err)
	}
}
