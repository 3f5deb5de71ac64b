package hw

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/hw/nmea"
)

func TestParseLines(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		spec   Spec
		line   string
		body   string // the values and units of the message body, "" for an error
		errIs  error  // with body "": errSkip, a checksum error or nil for a parse error
		errMsg string
	}{
		{"json", Spec{Format: JSON, Units: map[string]string{"t": "°C"}}, ` {"t": 21.50, "rh": 40, "id": "node-1", "ok": true, "cal": [1,2]} `,
			`"values":{"t":21.50,"rh":40,"id":"node-1","ok":true,"cal":[1,2]},"units":{"t":"°C"}`, nil, ""},
		{"json not an object", Spec{Format: JSON}, `[1,2]`, "", nil, "not an object"},
		{"json truncated", Spec{Format: JSON}, `{"t": 21.`, "", nil, "not a JSON value"},
		{"json garbage", Spec{Format: JSON}, "\x00\xffboot v1.2", "", nil, "not a JSON value"},
		{"json empty", Spec{Format: JSON}, `{}`, "", nil, "empty object"},
		{"json duplicate", Spec{Format: JSON}, `{"a":1,"a":2}`, "", nil, "appears twice"},
		{"json two values", Spec{Format: JSON}, `{"a":1} {"b":2}`, "", nil, "not a JSON value"},
		{"csv", Spec{Format: CSV, CSVHeader: []string{"t", "rh", "id", "flag", "missing"}, Units: map[string]string{"rh": "%RH"}},
			`21.5, 40,"node, 1",true,`, `"values":{"t":21.5,"rh":40,"id":"node, 1","flag":true,"missing":null},"units":{"rh":"%RH"}`, nil, ""},
		{"csv not JSON numbers", Spec{Format: CSV, CSVHeader: []string{"a", "b", "c", "d"}}, `+1,0x10,NaN,1e999`,
			`"values":{"a":"+1","b":"0x10","c":"NaN","d":"1e999"}`, nil, ""},
		{"csv header echo", Spec{Format: CSV, CSVHeader: []string{"t", "rh"}}, `t, rh`, "", errSkip, ""},
		{"csv too few", Spec{Format: CSV, CSVHeader: []string{"t", "rh"}}, `21.5`, "", nil, "1 fields, want 2 (t,rh)"},
		{"csv bad quote", Spec{Format: CSV, CSVHeader: []string{"t"}}, `"21.5`, "", nil, "csv:"},
		{"nmea gga", Spec{Format: NMEA}, "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
			`"type":"GGA","values":{"latitude":48.1173,"longitude":11.5166667,"altitude":545.4,"quality":1,"satellites":8,"hdop":0.9,"fix_time":"12:35:19.000"},"units":{"latitude":"°","longitude":"°","altitude":"m"}`, nil, ""},
		{"nmea rmc", Spec{Format: NMEA}, "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
			`"type":"RMC","values":{"latitude":48.1173,"longitude":11.5166667,"speed":22.4,"course":84.4,"fix_time":"1994-03-23T12:35:19.000Z"},"units":{"latitude":"°","longitude":"°","speed":"kn","course":"°"}`, nil, ""},
		{"nmea bad checksum", Spec{Format: NMEA}, "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48", "", nmea.ErrChecksum, ""},
		{"nmea other sentence", Spec{Format: NMEA}, "$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39", "", errSkip, ""},
		{"nmea no fix", Spec{Format: NMEA}, "$GPRMC,002153.000,V,,,,,,,060180,,,N*47", "", errSkip, ""},
		{"nmea garbage", Spec{Format: NMEA}, "\xfe\x00$GP", "", nmea.ErrSyntax, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &Input{spec: tt.spec}
			r, err := in.parseLine([]byte(tt.line), at)
			if tt.body == "" {
				switch {
				case err == nil:
					t.Fatalf("parseLine() = %+v, want an error", r)
				case tt.errIs != nil && !errors.Is(err, tt.errIs):
					t.Errorf("parseLine() error = %v, want %v", err, tt.errIs)
				case tt.errMsg != "" && !strings.Contains(err.Error(), tt.errMsg) && !errors.Is(err, errSkip):
					t.Errorf("parseLine() error = %v, want one containing %q", err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := r.Body("x", "serial")
			if err != nil {
				t.Fatal(err)
			}
			if got := string(body); !strings.HasSuffix(got, ","+tt.body+"}") {
				t.Errorf("body = %s\nwant it to end in ,%s}", got, tt.body)
			}
		})
	}
}

// FuzzParseLine feeds arbitrary lines to every format: no panic, and a line that
// parses always gives a body that is valid JSON.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"t": 21.5, "rh": 40, "id": "n", "ok": true, "x": null, "a": [1, {"b": 2}]}`,
		`21.5,40,"a, b",true,`,
		"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
		"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
		"\x00\xff",
	} {
		f.Add(s)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	inputs := []*Input{
		{spec: Spec{Format: JSON}},
		{spec: Spec{Format: CSV, CSVHeader: []string{"t", "rh", "id", "ok", "x"}}},
		{spec: Spec{Format: NMEA}},
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, in := range inputs {
			r, err := in.parseLine([]byte(line), at)
			if err != nil {
				continue
			}
			body, err := r.Body("fuzz", "serial")
			if err != nil || !json.Valid(body) {
				t.Fatalf("%s: line %q gives body %q, %v", in.spec.Format, line, body, err)
			}
		}
	})
}
