package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAddressTemplateCheck(t *testing.T) {
	t.Chdir(t.TempDir()) // errors name the file as given: "shadowgw.conf"
	for _, tt := range []struct {
		name, text string
		want       []string
	}{
		{"hono", "[uplink]\naddress-template = telemetry/mytenant/{device}\n", nil},
		{"every variable", "[uplink]\naddress-prefix = /queue/\naddress-template = {route}.{address}.{device}\n", nil},
		{"unknown variable", "[log]\nlevel = info\n[uplink]\naddress-template = telemetry/{tenant}/{device}\n",
			[]string{"shadowgw.conf:4: [uplink] address-template: unknown variable {tenant}: want {address}, {device} or {route}"}},
		{"unclosed", "[uplink]\naddress-template = telemetry/{device\n",
			[]string{"shadowgw.conf:2: [uplink] address-template: unclosed { at byte 10 (write {{ for a brace)"}},
		{"no variable", "[uplink]\naddress-template = telemetry\n",
			[]string{"shadowgw.conf:2: [uplink] address-template: no variable: want {address}, {device} or {route} (a fixed prefix is address-prefix)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, "shadowgw.conf", tt.text, 0o644)
			c, err := Check("shadowgw.conf", Flags{})
			if got := errorLines(err); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if err == nil && !strings.Contains(tt.text, c.Uplink.AddressTemplate) {
				t.Errorf("address-template parsed as %q", c.Uplink.AddressTemplate)
			}
		})
	}
}
