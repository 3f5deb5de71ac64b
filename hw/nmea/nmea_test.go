package nmea

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// The classic example sentences of the NMEA 0183 descriptions: a fix at 12:35:19 UTC
// on 23 March 1994 at 48°07.038' N 11°31.000' E.
const (
	exampleGGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
	exampleRMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
)

func TestParseGGA(t *testing.T) {
	s, err := Parse(exampleGGA + "\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Talker != "GP" || s.Type != "GGA" || len(s.Fields) != 14 {
		t.Errorf("Parse() = %+v", s)
	}
	g, err := ParseGGA(s)
	if err != nil {
		t.Fatal(err)
	}
	want := GGA{Time: 12*time.Hour + 35*time.Minute + 19*time.Second, Latitude: 48 + 7.038/60, Longitude: 11 + 31.0/60,
		Quality: 1, Satellites: 8, HDOP: 0.9, Altitude: 545.4}
	if g != want {
		t.Errorf("ParseGGA() = %+v, want %+v", g, want)
	}
}

func TestParseRMC(t *testing.T) {
	s, err := Parse(exampleRMC)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRMC(s)
	if err != nil {
		t.Fatal(err)
	}
	want := RMC{Time: time.Date(1994, 3, 23, 12, 35, 19, 0, time.UTC), Valid: true, Latitude: 48 + 7.038/60,
		Longitude: 11 + 31.0/60, Speed: 22.4, Course: 84.4}
	if r != want {
		t.Errorf("ParseRMC() = %+v, want %+v", r, want)
	}
}

// sum returns body framed as a sentence with its checksum.
func sum(body string) string {
	var c byte
	for i := 0; i < len(body); i++ {
		c ^= body[i]
	}
	const hex = "0123456789ABCDEF"
	return "$" + body + "*" + string(hex[c>>4]) + string(hex[c&15])
}

func TestParseOtherFixes(t *testing.T) {
	// Southern and western hemispheres, fractional seconds, a multi-constellation
	// talker, and no fix.
	s, err := Parse(sum("GNGGA,235959.50,3352.1280,S,15112.3360,W,2,12,0.6,-3.5,M,22.1,M,1.0,0000"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGGA(s)
	if err != nil {
		t.Fatal(err)
	}
	if g.Latitude != -(33+52.128/60) || g.Longitude != -(151+12.336/60) || g.Altitude != -3.5 || g.Quality != 2 ||
		g.Time != 23*time.Hour+59*time.Minute+59500*time.Millisecond {
		t.Errorf("ParseGGA() = %+v", g)
	}
	s, _ = Parse(sum("GPGGA,002153.000,,,,,0,00,,,M,,M,,"))
	if g, err := ParseGGA(s); err != nil || g.Quality != 0 || g.Time != 21*time.Minute+53*time.Second {
		t.Errorf("ParseGGA(no fix) = %+v, %v", g, err)
	}
	s, _ = Parse(sum("GPRMC,002153.000,V,,,,,,,060180,,,N"))
	if r, err := ParseRMC(s); err != nil || r.Valid || !r.Time.Equal(time.Date(1980, 1, 6, 0, 21, 53, 0, time.UTC)) {
		t.Errorf("ParseRMC(no fix) = %+v, %v", r, err)
	}
	s, _ = Parse(sum("GNRMC,101010,A,5000.0000,N,00000.0000,E,0.0,,010125,,,A"))
	if r, err := ParseRMC(s); err != nil || r.Course != 0 || r.Time.Year() != 2025 {
		t.Errorf("ParseRMC(no course) = %+v, %v", r, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, line string
		want       error
		msg        string
	}{
		{"checksum", strings.Replace(exampleGGA, "*47", "*48", 1), ErrChecksum, "sums to 47"},
		{"flipped digit", strings.Replace(exampleGGA, "545.4", "545.5", 1), ErrChecksum, ""},
		{"no checksum", "$GPGGA,123519,4807.038,N", ErrSyntax, "no *HH"},
		{"bad checksum digits", "$GPGGA,1*ZZ", ErrSyntax, "not hexadecimal"},
		{"no dollar", "GPGGA,123519*00", ErrSyntax, "does not start with $"},
		{"empty", "", ErrSyntax, ""},
		{"binary garbage", "$\x00\xff\x13*00", ErrSyntax, "byte 0x00"},
		{"microcontroller debug", "boot: ok", ErrSyntax, ""},
		{"too long", "$" + strings.Repeat("A", 300) + "*00", ErrSyntax, "longer than"},
		{"bad address", sum("G"), ErrSyntax, "address"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.line)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: Parse() error = %v, want %v containing %q", tt.name, err, tt.want, tt.msg)
		}
	}
	for _, line := range []string{
		sum("GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
		sum("GPGGA,123519,4867.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
		sum("GPGGA,253519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
		sum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,F,46.9,M,,"),
		sum("GPGGA,123519,4807.038,N"),
		sum("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"),
		sum("GPRMC,123519,A,4807.038,N,01131.000,E,fast,084.4,230394,003.1,W"),
		sum("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W"),
	} {
		s, err := Parse(line)
		if err != nil {
			t.Errorf("Parse(%q): %v", line, err)
			continue
		}
		if s.Type == "GGA" {
			_, err = ParseGGA(s)
		} else {
			_, err = ParseRMC(s)
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse%s(%q) error = %v, want ErrSyntax", s.Type, line, err)
		}
	}
	if s, err := Parse(sum("PUBX,00,1")); err != nil || s.Type != "PUBX" || s.Talker != "" {
		t.Errorf("Parse(proprietary) = %+v, %v", s, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(exampleGGA)
	f.Add(exampleRMC)
	f.Add(sum("GPRMC,002153.000,V,,,,,,,060180,,,N"))
	f.Fuzz(func(t *testing.T, line string) {
		s, err := Parse(line)
		if err != nil {
			return
		}
		switch s.Type {
		case "GGA":
			g, err := ParseGGA(s)
			if err == nil && (math.Abs(g.Latitude) > 90 || math.Abs(g.Longitude) > 180) {
				t.Errorf("ParseGGA(%q) = %+v", line, g)
			}
		case "RMC":
			_, _ = ParseRMC(s)
		}
	})
}
