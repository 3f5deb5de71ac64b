package codec

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzCheck checks that Check accepts and refuses exactly what Value does, with the
// same error, and consumes the same bytes.
func FuzzCheck(f *testing.F) {
	for _, v := range []any{nil, uint32(7), "s", List{Map{{Symbol("k"), []byte("v")}}},
		&Array{Code: TypeSym32, Values: []any{Symbol("a")}}, &Described{Descriptor: uint64(0x75), Value: []byte("x")},
		&Array{Code: TypeList8, Values: []any{List{true, int64(-1)}}, Descriptor: Symbol("d")},
		Map{{"k", &Described{Descriptor: Symbol("x"), Value: 1.5}}}, Timestamp(1), UUID{1}} {
		var w Writer
		if err := w.Value(v); err != nil {
			f.Fatal(err)
		}
		f.Add(w.Bytes())
	}
	for _, in := range [][]byte{
		{0x56, 0x02},                   // bool byte 2
		{0xa1, 0x01, 0xff},             // invalid UTF-8
		{0xc1, 0x03, 0x01, 0x40},       // odd map
		{0x00, 0xa1, 0x01, 'x', 0x40},  // string descriptor
		{0xe0, 0x03, 0x01, 0x40, 0x40}, // null array constructor
		{0xc0, 0x05, 0x02, 0x40},       // list size does not match
	} {
		f.Add(in)
	}
	// The corpus FuzzValue found.
	if ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzValue")); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzValue", e.Name())); err == nil {
				if in, ok := corpusBytes(string(b)); ok {
					f.Add(in)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rv, rc := NewReader(in), NewReader(in)
		_, verr := rv.Value()
		_, cerr := rc.Check()
		if (verr == nil) != (cerr == nil) || (verr != nil && verr.Error() != cerr.Error()) {
			t.Fatalf("% x: Value: %v, Check: %v", in, verr, cerr)
		}
		if verr == nil && rv.Offset() != rc.Offset() {
			t.Fatalf("% x: Value read %d bytes, Check %d", in, rv.Offset(), rc.Offset())
		}
	})
}

// corpusBytes reads the []byte of a go test fuzz corpus file (v1 format).
func corpusBytes(file string) ([]byte, bool) {
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "[]byte(") {
		return nil, false
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		return nil, false
	}
	return []byte(s), true
}
