package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDirectCommandsCheck(t *testing.T) {
	t.Chdir(t.TempDir()) // errors name the file as given: "shadowgw.conf"
	for _, tt := range []struct {
		name, text string
		want       []string
	}{
		{"defaults", "[commands]\n", nil},
		{"direct devices", "[commands]\ndirect = valve-*, pump-7\ndirect-source = /queue/c2d-{device}\npresence = presence\npresence-ttl = 30s\n", nil},
		{"unknown variable", "[log]\nlevel = info\n[commands]\ndirect = valve-*\ndirect-source = command/{tenant}/{device}\n",
			[]string{"shadowgw.conf:5: [commands] direct-source: unknown variable {tenant}: want {address}, {device} or {route}"}},
		{"empty source", "[commands]\ndirect-source =\n",
			[]string{"shadowgw.conf:2: [commands] direct-source: empty"}},
		{"presence-ttl", "[commands]\npresence = p\npresence-ttl = 0s\n",
			[]string{"shadowgw.conf:3: [commands] presence-ttl: must be positive"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, "shadowgw.conf", tt.text, 0o644)
			c, err := Check("shadowgw.conf", Flags{})
			if got := errorLines(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err != nil || tt.name != "direct devices" {
				return
			}
			m := c.Commands
			if !slices.Equal(m.Direct, []string{"valve-*", "pump-7"}) || m.DirectSource != "/queue/c2d-{device}" ||
				m.Presence != "presence" || m.PresenceTTL != 30*time.Second {
				t.Errorf("parsed as %+v", m)
			}
		})
	}
}
