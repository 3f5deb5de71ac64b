package hw

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/hw/nmea"
)

// parseLine turns one line of a serial input (without its line break) into a
// Reading taken at t. A line that is not a reading gives an error wrapping errSkip;
// a checksum mismatch one that isChecksum recognises.
func (in *Input) parseLine(line []byte, t time.Time) (Reading, error) {
	s := strings.TrimSpace(string(line))
	r := Reading{Time: t}
	var err error
	switch in.spec.Format {
	case JSON:
		r.Values, err = parseJSONLine(s, in.spec.Units)
	case CSV:
		r.Values, err = parseCSVLine(s, in.spec.CSVHeader, in.spec.Units)
	case NMEA:
		r.Type, r.Values, err = parseNMEALine(s)
	default:
		err = fmt.Errorf("format %q", in.spec.Format)
	}
	return r, err
}

// parseJSONLine reads a line holding one JSON object: each member is a value, in the
// order of the line, kept as the JSON it is.
func parseJSONLine(s string, units map[string]string) ([]Value, error) {
	if !json.Valid([]byte(s)) {
		return nil, errors.New("json: not a JSON value")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("json: not an object")
	}
	var vals []Value
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("json: %w", err)
		}
		name := tok.(string) // an object's keys are strings; the line is valid JSON
		if slices.ContainsFunc(vals, func(v Value) bool { return v.Name == name }) {
			return nil, fmt.Errorf("json: member %q appears twice", name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("json: %w", err)
		}
		vals = append(vals, Value{Name: name, V: raw, Unit: units[name]})
	}
	if len(vals) == 0 {
		return nil, errors.New("json: empty object")
	}
	return vals, nil
}

// parseCSVLine reads a line of comma-separated fields named by header. Numbers stay
// as written, true and false are booleans, empty fields null and the rest strings. A
// line equal to the header (devices often print it when they start) is skipped.
func parseCSVLine(s string, header []string, units map[string]string) ([]Value, error) {
	cr := csv.NewReader(strings.NewReader(s))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	rec, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	if _, err := cr.Read(); err != io.EOF {
		return nil, errors.New("csv: more than one record")
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	if slices.Equal(rec, header) {
		return nil, fmt.Errorf("csv: header line: %w", errSkip)
	}
	if len(rec) != len(header) {
		return nil, fmt.Errorf("csv: %d fields, want %d (%s)", len(rec), len(header), strings.Join(header, ","))
	}
	vals := make([]Value, len(rec))
	for i, f := range rec {
		var v any
		switch {
		case f == "":
			v = nil
		case f == "true" || f == "false":
			v = f == "true"
		case isJSONNumber(f):
			v = json.RawMessage(f)
		default:
			v = f
		}
		vals[i] = Value{Name: header[i], V: v, Unit: units[header[i]]}
	}
	return vals, nil
}

// isJSONNumber reports whether s is a finite number written as JSON writes numbers.
func isJSONNumber(s string) bool {
	if s == "" || !(s[0] == '-' || '0' <= s[0] && s[0] <= '9') {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsInf(f, 0) && json.Valid([]byte(s))
}

// parseNMEALine reads one NMEA 0183 sentence. GGA and RMC sentences with a fix are
// readings; the other sentences, and fixes not (yet) valid, are skipped.
func parseNMEALine(s string) (string, []Value, error) {
	sen, err := nmea.Parse(s)
	if err != nil {
		return "", nil, err
	}
	switch sen.Type {
	case "GGA":
		g, err := nmea.ParseGGA(sen)
		if err != nil {
			return "", nil, err
		}
		if g.Quality == 0 {
			return "", nil, fmt.Errorf("gga without a fix: %w", errSkip)
		}
		return "GGA", []Value{
			{Name: "latitude", V: round(g.Latitude, 7), Unit: "°"},
			{Name: "longitude", V: round(g.Longitude, 7), Unit: "°"},
			{Name: "altitude", V: g.Altitude, Unit: "m"},
			{Name: "quality", V: int64(g.Quality)},
			{Name: "satellites", V: int64(g.Satellites)},
			{Name: "hdop", V: g.HDOP},
			{Name: "fix_time", V: formatTimeOfDay(g.Time)},
		}, nil
	case "RMC":
		r, err := nmea.ParseRMC(sen)
		if err != nil {
			return "", nil, err
		}
		if !r.Valid {
			return "", nil, fmt.Errorf("rmc without a valid fix: %w", errSkip)
		}
		return "RMC", []Value{
			{Name: "latitude", V: round(r.Latitude, 7), Unit: "°"},
			{Name: "longitude", V: round(r.Longitude, 7), Unit: "°"},
			{Name: "speed", V: r.Speed, Unit: "kn"},
			{Name: "course", V: r.Course, Unit: "°"},
			{Name: "fix_time", V: r.Time.Format(timeLayout)},
		}, nil
	}
	return "", nil, fmt.Errorf("%s sentence: %w", sen.Type, errSkip)
}

// formatTimeOfDay writes a UTC time of day as hh:mm:ss.sss.
func formatTimeOfDay(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}
