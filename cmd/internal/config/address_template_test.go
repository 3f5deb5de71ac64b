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

func TestSourceAnnotationCheck(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tt := range []struct {
		name, text, want string // want: the value, or the error line
	}{
		{"default", "[uplink]\naddress-prefix = /queue/\n", "x-opt-shadowgw-source"},
		{"another key", "[uplink]\nsource-annotation = x-opt-device-id\n", "x-opt-device-id"},
		{"none", "[uplink]\nsource-annotation = none\n", "none"},
		{"empty", "[uplink]\nsource-annotation =\n",
			"shadowgw.conf:2: [uplink] source-annotation: is empty: want a symbol beginning with x-opt-, or none"},
		{"reserved", "[log]\nlevel = info\n[uplink]\nsource-annotation = device\n",
			`shadowgw.conf:4: [uplink] source-annotation: "device": want a symbol beginning with x-opt- (AMQP 1.0 §3.2.10 reserves the others), or none`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, "shadowgw.conf", tt.text, 0o644)
			c, err := Check("shadowgw.conf", Flags{})
			if err != nil {
				if got := errorLines(err); !slices.Equal(got, []string{tt.want}) {
					t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
				}
				return
			}
			if c.Uplink.SourceAnnotation != tt.want {
				t.Errorf("source-annotation: got %q, want %q", c.Uplink.SourceAnnotation, tt.want)
			}
		})
	}
}
