package hw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Reading is one measurement of an input: named values taken at one time. A Reading
// is not modified once made.
type Reading struct {
	Time   time.Time // when it was taken, by the gateway's clock
	Type   string    // for inputs with several kinds of reading, which one: "GGA", "RMC"; or ""
	Values []Value
}

// Value is one named value of a Reading.
type Value struct {
	Name string
	// V is the value: float64, int64, string, bool, nil (JSON null) or, for values
	// copied from a JSON or CSV line, json.RawMessage holding one JSON value.
	V    any
	Unit string // "°C", "hPa", "%RH", "V", ...; "" when unknown
}

// String returns the values for people: "temperature 25.08 °C, pressure 1006.53 hPa".
func (r Reading) String() string {
	var b bytes.Buffer
	if r.Type != "" {
		b.WriteString(r.Type + ": ")
	}
	for i, v := range r.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		j, _ := jsonValue(v.V)
		fmt.Fprintf(&b, "%s %s", v.Name, j)
		if v.Unit != "" {
			b.WriteString(" " + v.Unit)
		}
	}
	return b.String()
}

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Body returns the JSON object a message carries for r from input name of kind:
//
//	{"input":NAME,"kind":KIND,"time":RFC3339,["type":TYPE,]"values":{...}[,"units":{...}]}
//
// The values keep their order; units lists the values that have one.
func (r Reading) Body(name, kind string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"input":`)
	writeString(&b, name)
	b.WriteString(`,"kind":`)
	writeString(&b, kind)
	b.WriteString(`,"time":`)
	writeString(&b, r.Time.UTC().Format(timeLayout))
	if r.Type != "" {
		b.WriteString(`,"type":`)
		writeString(&b, r.Type)
	}
	b.WriteString(`,"values":{`)
	units := 0
	for i, v := range r.Values {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, v.Name)
		b.WriteByte(':')
		j, err := jsonValue(v.V)
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", v.Name, err)
		}
		b.Write(j)
		if v.Unit != "" {
			units++
		}
	}
	b.WriteByte('}')
	if units > 0 {
		b.WriteString(`,"units":{`)
		n := 0
		for _, v := range r.Values {
			if v.Unit == "" {
				continue
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			writeString(&b, v.Name)
			b.WriteByte(':')
			writeString(&b, v.Unit)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeString(b *bytes.Buffer, s string) {
	j, _ := json.Marshal(s) // a string always encodes
	b.Write(j)
}

// jsonValue encodes one Value.V.
func jsonValue(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return []byte("null"), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v has no JSON encoding", v)
		}
		return strconv.AppendFloat(nil, v, 'f', -1, 64), nil
	case int64:
		return strconv.AppendInt(nil, v, 10), nil
	case string:
		return json.Marshal(v)
	case bool:
		return strconv.AppendBool(nil, v), nil
	case json.RawMessage:
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("unsupported type %T", v)
}

// round returns v rounded to the given number of decimals.
func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}
