package uplink

import (
	"errors"
	"strings"
	"testing"

	"github.com/shadowgw/shadowgw/store"
)

func TestAddressTemplate(t *testing.T) {
	m := &store.Message{Address: "telemetry", Source: "sensor-1", Route: "fast"}
	hw := &store.Message{Address: "sensors/attic", Source: "input:attic", Route: "default"}
	for _, tt := range []struct {
		template, want, wantHW string
	}{
		{"", "telemetry", "sensors/attic"},
		{"{address}", "telemetry", "sensors/attic"},
		{"telemetry/mytenant/{device}", "telemetry/mytenant/sensor-1", "telemetry/mytenant/input:attic"},
		{"{address}.{device}", "telemetry.sensor-1", "sensors/attic.input:attic"},
		{"{route}/{address}/{device}", "fast/telemetry/sensor-1", "default/sensors/attic/input:attic"},
		{"{{x}}/{device}", "{x}/sensor-1", "{x}/input:attic"},
	} {
		tpl, err := ParseAddressTemplate(tt.template)
		if err != nil {
			t.Fatalf("ParseAddressTemplate(%q): %v", tt.template, err)
		}
		if got := tpl.Expand(m); got != tt.want {
			t.Errorf("%q for a device: got %q, want %q", tt.template, got, tt.want)
		}
		if got := tpl.Expand(hw); got != tt.wantHW {
			t.Errorf("%q for an input: got %q, want %q", tt.template, got, tt.wantHW)
		}
	}
}

func TestAddressTemplateErrors(t *testing.T) {
	for _, tt := range []struct{ template, want string }{
		{"telemetry/{tenant}/{device}", "unknown variable {tenant}"},
		{"telemetry/{device", "unclosed {"},
		{"telemetry/device}", "unmatched }"},
		{"telemetry", "no variable"},
		{"{}", "unknown variable {}"},
	} {
		_, err := ParseAddressTemplate(tt.template)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseAddressTemplate(%q): got %v, want an error with %q", tt.template, err, tt.want)
		}
		cfg := Config{URL: "amqps://127.0.0.1", AddressTemplate: tt.template}
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "AddressTemplate") {
			t.Errorf("Validate with %q: got %v, want ErrConfig naming AddressTemplate", tt.template, err)
		}
	}
}
