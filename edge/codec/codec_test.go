package codec

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		v    any
	}{
		{"null", nil},
		{"true", true},
		{"false", false},
		{"ubyte", uint8(200)},
		{"ushort", uint16(65000)},
		{"uint0", uint32(0)},
		{"smalluint", uint32(7)},
		{"uint", uint32(1 << 20)},
		{"ulong0", uint64(0)},
		{"smallulong", uint64(255)},
		{"ulong", uint64(math.MaxUint64)},
		{"byte", int8(-5)},
		{"short", int16(-30000)},
		{"smallint", int32(-100)},
		{"int", int32(-1 << 20)},
		{"smalllong", int64(127)},
		{"long", int64(math.MinInt64)},
		{"float", float32(1.5)},
		{"double", math.Pi},
		{"char", Char('€')},
		{"timestamp", Timestamp(1700000000123)},
		{"uuid", UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{"vbin8", []byte("abc")},
		{"vbin32", bytes.Repeat([]byte{7}, 300)},
		{"str8", "héllo"},
		{"str32", strings.Repeat("x", 1000)},
		{"sym", Symbol("amqp:accepted:list")},
		{"list", List{uint32(1), "two", nil, List{true}}},
		{"map", Map{{Symbol("k"), int64(-1)}, {"s", Map{{uint64(1), []byte{0}}}}}},
		{"described", &Described{Descriptor: uint64(0x24), Value: List{}}},
		{"symbol array", &Array{Code: TypeSym32, Values: []any{Symbol("PLAIN"), Symbol("ANONYMOUS")}}},
		{"int array", &Array{Code: TypeInt, Values: []any{int32(1), int32(-2)}}},
		{"described array", &Array{Code: TypeStr32, Descriptor: Symbol("x"), Values: []any{&Described{Descriptor: Symbol("x"), Value: "a"}}}},
		{"list8 limit", List{bytes.Repeat([]byte{1}, 240)}},
		{"decimal64", Decimal{Code: TypeDecimal64, Bytes: []byte{1, 2, 3, 4, 5, 6, 7, 8}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w Writer
			if err := w.Value(tc.v); err != nil {
				t.Fatalf("encode: %v", err)
			}
			r := NewReader(w.Bytes())
			got, err := r.Value()
			if err != nil {
				t.Fatalf("decode % x: %v", w.Bytes(), err)
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes left", r.Len())
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("got %#v, want %#v", got, tc.v)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no format code"},
		{"unknown code", []byte{0xff}, "unknown format code"},
		{"truncated uint", []byte{TypeUint, 0, 1}, "truncated"},
		{"str8 past end", []byte{TypeStr8, 10, 'a'}, "truncated"},
		{"str32 huge", []byte{TypeStr32, 0xff, 0xff, 0xff, 0xff}, "size exceeds remaining bytes"},
		{"bad utf8", []byte{TypeStr8, 1, 0xff}, "not valid UTF-8"},
		{"list count lies", []byte{TypeList8, 2, 200, TypeNull}, "element count exceeds size"},
		{"list32 count lies", []byte{TypeList32, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, TypeNull}, "exceeds"},
		{"list size mismatch", []byte{TypeList8, 3, 1, TypeNull, TypeNull}, "list size does not match"},
		{"odd map", []byte{TypeMap8, 2, 1, TypeNull}, "odd number"},
		{"array count lies", []byte{TypeArray8, 2, 100, TypeNull}, "element count exceeds size"},
		{"array of nulls", []byte{TypeArray8, 3, 2, TypeNull}, "invalid array element constructor"},
		{"bad bool", []byte{TypeBool, 2}, "boolean byte"},
		{"bad descriptor", []byte{TypeDescribed, TypeStr8, 0, TypeNull}, "descriptor must be"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(tc.in).Value()
			var de *Error
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want *Error containing %q", err, tc.want)
			}
		})
	}
}

func TestNestingLimited(t *testing.T) {
	// 10,000 nested list8 headers: must fail cleanly, not exhaust the stack.
	var in []byte
	for i := 0; i < 10000; i++ {
		in = append(in, TypeList8, 255, 1)
	}
	if _, err := NewReader(in).Value(); err == nil {
		t.Fatal("deeply nested input decoded without error")
	}
	if err := NewReader(in).Skip(); err != nil && !strings.Contains(err.Error(), "truncated") {
		t.Logf("skip: %v", err)
	}
}

func TestFieldsDefaultsAndTrailing(t *testing.T) {
	var w Writer
	m := w.BeginList()
	w.Uint(5)
	w.Null()
	w.EndList(m, 2)
	f := NewReader(w.Bytes()).Composite("x")
	if v, ok := f.Uint32("a"); !ok || v != 5 {
		t.Fatalf("a = %d, %v", v, ok)
	}
	if _, ok := f.String("b"); ok {
		t.Fatal("null field reported present")
	}
	if _, ok := f.Bool("c"); ok {
		t.Fatal("missing trailing field reported present")
	}
	if err := f.Done(); err != nil {
		t.Fatal(err)
	}
}

func FuzzValue(f *testing.F) {
	for _, v := range []any{nil, uint32(7), "s", List{Map{{Symbol("k"), []byte("v")}}},
		&Array{Code: TypeSym32, Values: []any{Symbol("a")}}, &Described{Descriptor: uint64(0x75), Value: []byte("x")}} {
		var w Writer
		if err := w.Value(v); err != nil {
			f.Fatal(err)
		}
		f.Add(w.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		v, err := r.Value()
		if err != nil {
			return
		}
		// decode → encode → decode is stable.
		var w Writer
		if err := w.Value(v); err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		v2, err := NewReader(w.Bytes()).Value()
		if err != nil {
			t.Fatalf("decode of re-encoding % x: %v", w.Bytes(), err)
		}
		if !reflect.DeepEqual(normalize(v), normalize(v2)) {
			t.Fatalf("unstable: %#v then %#v", v, v2)
		}
	})
}

// normalize maps values whose Go form depends on the input aliasing (empty vs nil
// slices) to one form, for comparisons.
func normalize(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case List:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case Map:
		out := make([]any, 0, 2*len(v))
		for _, p := range v {
			out = append(out, normalize(p.Key), normalize(p.Value))
		}
		return out
	case *Array:
		out := []any{v.Code, normalize(v.Descriptor)}
		for _, e := range v.Values {
			out = append(out, normalize(e))
		}
		return out
	case *Described:
		return []any{"described", normalize(v.Descriptor), normalize(v.Value)}
	case float32:
		if v != v {
			return "NaN32"
		}
	case float64:
		if v != v {
			return "NaN64"
		}
	}
	return v
}
