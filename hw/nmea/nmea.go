// Package nmea parses NMEA 0183 sentences as GPS receivers send them over a serial
// line: the frame and its checksum, and the GGA (fix data) and RMC (recommended
// minimum) sentences of any talker (GP, GN, GL, GA, BD, ...).
//
// A sentence is "$" (or "!"), an address of a two-letter talker and a sentence type,
// comma-separated fields, "*" and the checksum: two hexadecimal digits of the XOR of
// every byte between "$" and "*". Sentences without a checksum are rejected; GGA and
// RMC always carry one.
package nmea

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors wrapped by Parse.
var (
	// ErrChecksum: the checksum does not match the sentence.
	ErrChecksum = errors.New("nmea: checksum mismatch")
	// ErrSyntax: the line is not an NMEA sentence.
	ErrSyntax = errors.New("nmea: not a sentence")
)

// maxSentence is the longest sentence accepted. NMEA 0183 allows 82 characters; some
// receivers send longer proprietary sentences.
const maxSentence = 256

// Sentence is one checked sentence.
type Sentence struct {
	Talker string   // "GP", "GN", ...; "" for a proprietary sentence ("P...")
	Type   string   // "GGA", "RMC", ...
	Fields []string // the fields after the address
}

// Parse checks a sentence's frame and checksum and splits it into fields. Trailing
// CR and LF are ignored.
func Parse(line string) (Sentence, error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) > maxSentence {
		return Sentence{}, fmt.Errorf("%w: %d bytes, longer than %d", ErrSyntax, len(line), maxSentence)
	}
	if line == "" || (line[0] != '$' && line[0] != '!') {
		return Sentence{}, fmt.Errorf("%w: does not start with $", ErrSyntax)
	}
	star := strings.LastIndexByte(line, '*')
	if star < 0 || len(line)-star != 3 {
		return Sentence{}, fmt.Errorf("%w: no *HH checksum at the end", ErrSyntax)
	}
	body := line[1:star]
	want, err := strconv.ParseUint(line[star+1:], 16, 8)
	if err != nil {
		return Sentence{}, fmt.Errorf("%w: checksum %q is not hexadecimal", ErrSyntax, line[star+1:])
	}
	var sum byte
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c < 0x20 || c > 0x7E {
			return Sentence{}, fmt.Errorf("%w: byte 0x%02x at %d", ErrSyntax, c, i+1)
		}
		sum ^= c
	}
	if sum != byte(want) {
		return Sentence{}, fmt.Errorf("%w: sentence sums to %02X, checksum says %02X", ErrChecksum, sum, want)
	}
	fields := strings.Split(body, ",")
	addr := fields[0]
	s := Sentence{Fields: fields[1:]}
	switch {
	case len(addr) >= 2 && addr[0] == 'P':
		s.Type = addr
	case len(addr) == 5:
		s.Talker, s.Type = addr[:2], addr[2:]
	default:
		return Sentence{}, fmt.Errorf("%w: address %q", ErrSyntax, addr)
	}
	return s, nil
}

// GGA is a fix (sentence GGA: "Global Positioning System Fix Data").
type GGA struct {
	Time       time.Duration // UTC time of day of the fix
	Latitude   float64       // degrees, north positive
	Longitude  float64       // degrees, east positive
	Quality    int           // 0 no fix, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 estimated, ...
	Satellites int           // satellites in use
	HDOP       float64       // horizontal dilution of precision
	Altitude   float64       // metres above mean sea level
}

// ParseGGA reads the fields of a GGA sentence. Without a fix (quality 0) the position
// fields are empty and only Time and Quality are set.
func ParseGGA(s Sentence) (GGA, error) {
	f := s.Fields
	if s.Type != "GGA" || len(f) < 14 {
		return GGA{}, fmt.Errorf("%w: want GGA with 14 fields, got %s with %d", ErrSyntax, s.Type, len(f))
	}
	var g GGA
	p := parser{}
	g.Time = p.timeOfDay("time", f[0])
	g.Quality = p.int("quality", f[5])
	if g.Quality == 0 {
		return g, p.err
	}
	g.Latitude = p.coord("latitude", f[1], f[2], "N", "S")
	g.Longitude = p.coord("longitude", f[3], f[4], "E", "W")
	g.Satellites = p.int("satellites", f[6])
	g.HDOP = p.float("hdop", f[7])
	g.Altitude = p.float("altitude", f[8])
	if p.err == nil && f[9] != "M" {
		p.err = fmt.Errorf("%w: altitude unit %q, want M", ErrSyntax, f[9])
	}
	return g, p.err
}

// RMC is a fix (sentence RMC: "Recommended Minimum Specific GNSS Data").
type RMC struct {
	Time      time.Time // UTC date and time of the fix
	Valid     bool      // status A; V means the receiver has no valid fix
	Latitude  float64   // degrees, north positive
	Longitude float64   // degrees, east positive
	Speed     float64   // speed over ground, knots
	Course    float64   // course over ground, degrees true; 0 when not moving
}

// ParseRMC reads the fields of an RMC sentence. Without a valid fix (status V) the
// other fields may be empty and only Time (when known) and Valid are set.
func ParseRMC(s Sentence) (RMC, error) {
	f := s.Fields
	if s.Type != "RMC" || len(f) < 9 {
		return RMC{}, fmt.Errorf("%w: want RMC with at least 9 fields, got %s with %d", ErrSyntax, s.Type, len(f))
	}
	var r RMC
	p := parser{}
	switch f[1] {
	case "A":
		r.Valid = true
	case "V":
	default:
		return RMC{}, fmt.Errorf("%w: rmc status %q", ErrSyntax, f[1])
	}
	if f[0] != "" && f[8] != "" {
		r.Time = p.date("date", f[8]).Add(p.timeOfDay("time", f[0]))
	}
	if !r.Valid {
		return r, p.err
	}
	r.Latitude = p.coord("latitude", f[2], f[3], "N", "S")
	r.Longitude = p.coord("longitude", f[4], f[5], "E", "W")
	r.Speed = p.float("speed", f[6])
	if f[7] != "" {
		r.Course = p.float("course", f[7])
	}
	return r, p.err
}

// parser reads fields and keeps the first error.
type parser struct{ err error }

func (p *parser) fail(field, v string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s %q", ErrSyntax, field, v)
	}
}

func (p *parser) float(field, v string) float64 {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		p.fail(field, v)
	}
	return x
}

func (p *parser) int(field, v string) int {
	x, err := strconv.Atoi(v)
	if err != nil {
		p.fail(field, v)
	}
	return x
}

// coord reads ddmm.mmmm (latitude) or dddmm.mmmm (longitude) and its hemisphere.
func (p *parser) coord(field, v, hemi, pos, neg string) float64 {
	dot := strings.IndexByte(v, '.')
	if dot < 0 {
		dot = len(v)
	}
	if dot < 3 || (hemi != pos && hemi != neg) {
		p.fail(field, v+","+hemi)
		return 0
	}
	deg := p.float(field, v[:dot-2])
	minutes := p.float(field, v[dot-2:])
	x := deg + minutes/60
	if minutes >= 60 || (pos == "N" && x > 90) || x > 180 {
		p.fail(field, v)
	}
	if hemi == neg {
		x = -x
	}
	return x
}

// timeOfDay reads hhmmss or hhmmss.sss.
func (p *parser) timeOfDay(field, v string) time.Duration {
	if len(v) < 6 {
		p.fail(field, v)
		return 0
	}
	h, m := p.int(field, v[:2]), p.int(field, v[2:4])
	s := p.float(field, v[4:])
	if h > 23 || m > 59 || s < 0 || s >= 61 {
		p.fail(field, v)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s*float64(time.Second)+0.5)
}

// date reads ddmmyy; years 80–99 are 1980–1999 (GPS began in 1980), the others 20yy.
func (p *parser) date(field, v string) time.Time {
	if len(v) != 6 {
		p.fail(field, v)
		return time.Time{}
	}
	d, m, y := p.int(field, v[:2]), p.int(field, v[2:4]), p.int(field, v[4:])
	if d < 1 || d > 31 || m < 1 || m > 12 {
		p.fail(field, v)
	}
	if y >= 80 {
		y += 1900
	} else {
		y += 2000
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
}
