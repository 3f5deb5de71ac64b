package codec

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of compound and described values the Reader accepts, so a
// small input cannot exhaust the stack.
const MaxDepth = 32

// Reader decodes AMQP 1.0 values from a byte slice. Decoded strings are copies; decoded
// binaries alias the input. A Reader is not safe for concurrent use.
type Reader struct {
	b     []byte
	off   int
	depth int
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from its start.
func (r *Reader) Reset(b []byte) { r.b, r.off, r.depth = b, 0, 0 }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// Rest returns the unread bytes without consuming them.
func (r *Reader) Rest() []byte { return r.b[r.off:] }

func (r *Reader) fail(off int, code byte, field, msg string) error {
	return &Error{Offset: off, Code: code, Field: field, Msg: msg}
}

// take consumes n bytes, checking them against what remains.
func (r *Reader) take(n int, code byte, field string) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, r.fail(r.off, code, field, "truncated: value needs more bytes than remain")
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

// PeekCode returns the next format code without consuming it.
func (r *Reader) PeekCode() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.fail(r.off, 0, "", "truncated: no format code")
	}
	return r.b[r.off], nil
}

// Null consumes a null and reports true if the next value is null.
func (r *Reader) Null() bool {
	if r.off < len(r.b) && r.b[r.off] == TypeNull {
		r.off++
		return true
	}
	return false
}

func (r *Reader) code(field string) (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.fail(r.off, 0, field, "truncated: no format code")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// size reads the size (or count) field of a variable or compound encoding: one byte for
// the 8-bit forms, four for the 32-bit ones.
func (r *Reader) size(wide bool, code byte, field string) (int, error) {
	if !wide {
		p, err := r.take(1, code, field)
		if err != nil {
			return 0, err
		}
		return int(p[0]), nil
	}
	p, err := r.take(4, code, field)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(r.b)-r.off) {
		return 0, r.fail(r.off-4, code, field, "size exceeds remaining bytes")
	}
	return int(n), nil
}

// fixedWidth returns the width of a fixed-width encoding, or -1 if code is not one.
func fixedWidth(code byte) int {
	switch code {
	case TypeNull, TypeBoolTrue, TypeBoolFalse, TypeUint0, TypeUlong0, TypeList0:
		return 0
	case TypeBool, TypeUbyte, TypeByte, TypeSmallUint, TypeSmallUlong, TypeSmallInt, TypeSmallLong:
		return 1
	case TypeUshort, TypeShort:
		return 2
	case TypeUint, TypeInt, TypeFloat, TypeDecimal32, TypeChar:
		return 4
	case TypeUlong, TypeLong, TypeDouble, TypeDecimal64, TypeTimestamp:
		return 8
	case TypeDecimal128, TypeUUID:
		return 16
	}
	return -1
}

// Descriptor reads the start of a described value whose descriptor is a ulong
// (§1.2; the numeric form every AMQP 1.0 performative, section and outcome uses) and
// returns the descriptor. The described value follows.
func (r *Reader) Descriptor(field string) (uint64, error) {
	start := r.off
	c, err := r.code(field)
	if err != nil {
		return 0, err
	}
	if c != TypeDescribed {
		return 0, r.fail(start, c, field, "expected a described type")
	}
	dc, err := r.code(field)
	if err != nil {
		return 0, err
	}
	switch dc {
	case TypeUlong, TypeSmallUlong, TypeUlong0:
		return r.unsigned(dc, field)
	case TypeSym8, TypeSym32:
		r.off--
		s, err := r.str(field, true)
		if err != nil {
			return 0, err
		}
		if d, ok := symbolicDescriptors[s]; ok {
			return d, nil
		}
		return 0, r.fail(start, dc, field, "unknown symbolic descriptor "+s)
	}
	return 0, r.fail(start+1, dc, field, "descriptor must be a ulong or a symbol")
}

// unsigned decodes the payload of an unsigned integer encoding whose code was read.
func (r *Reader) unsigned(c byte, field string) (uint64, error) {
	w := fixedWidth(c)
	p, err := r.take(w, c, field)
	if err != nil {
		return 0, err
	}
	switch c {
	case TypeUint0, TypeUlong0:
		return 0, nil
	case TypeUbyte, TypeSmallUint, TypeSmallUlong:
		return uint64(p[0]), nil
	case TypeUshort:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case TypeUint:
		return uint64(binary.BigEndian.Uint32(p)), nil
	case TypeUlong:
		return binary.BigEndian.Uint64(p), nil
	}
	return 0, r.fail(r.off-w-1, c, field, "expected an unsigned integer")
}

// Uint decodes any unsigned integer encoding. present is false for null.
func (r *Reader) Uint(field string) (v uint64, present bool, err error) {
	if r.Null() {
		return 0, false, nil
	}
	c, err := r.code(field)
	if err != nil {
		return 0, false, err
	}
	switch c {
	case TypeUint0, TypeUlong0, TypeUbyte, TypeSmallUint, TypeSmallUlong, TypeUshort, TypeUint, TypeUlong:
		v, err = r.unsigned(c, field)
		return v, err == nil, err
	}
	return 0, false, r.fail(r.off-1, c, field, "expected an unsigned integer")
}

// Bool decodes a boolean. present is false for null.
func (r *Reader) Bool(field string) (v, present bool, err error) {
	if r.Null() {
		return false, false, nil
	}
	c, err := r.code(field)
	if err != nil {
		return false, false, err
	}
	switch c {
	case TypeBoolTrue:
		return true, true, nil
	case TypeBoolFalse:
		return false, true, nil
	case TypeBool:
		p, err := r.take(1, c, field)
		if err != nil {
			return false, false, err
		}
		if p[0] > 1 {
			return false, false, r.fail(r.off-1, c, field, "boolean byte must be 0 or 1")
		}
		return p[0] == 1, true, nil
	}
	return false, false, r.fail(r.off-1, c, field, "expected a boolean")
}

// str decodes a string (sym false) or symbol (sym true) that is not null.
func (r *Reader) str(field string, sym bool) (string, error) {
	start := r.off
	c, err := r.code(field)
	if err != nil {
		return "", err
	}
	short, long := TypeStr8, TypeStr32
	if sym {
		short, long = TypeSym8, TypeSym32
	}
	if c != short && c != long {
		if sym {
			return "", r.fail(start, c, field, "expected a symbol")
		}
		return "", r.fail(start, c, field, "expected a string")
	}
	n, err := r.size(c == long, c, field)
	if err != nil {
		return "", err
	}
	p, err := r.take(n, c, field)
	if err != nil {
		return "", err
	}
	if !sym && !utf8.Valid(p) {
		return "", r.fail(start, c, field, "string is not valid UTF-8")
	}
	return string(p), nil
}

// String decodes a string. present is false for null.
func (r *Reader) String(field string) (string, bool, error) {
	if r.Null() {
		return "", false, nil
	}
	s, err := r.str(field, false)
	return s, err == nil, err
}

// Symbol decodes a symbol. present is false for null.
func (r *Reader) Symbol(field string) (Symbol, bool, error) {
	if r.Null() {
		return "", false, nil
	}
	s, err := r.str(field, true)
	return Symbol(s), err == nil, err
}

// Binary decodes a binary; the result aliases the input. present is false for null.
func (r *Reader) Binary(field string) ([]byte, bool, error) {
	if r.Null() {
		return nil, false, nil
	}
	start := r.off
	c, err := r.code(field)
	if err != nil {
		return nil, false, err
	}
	if c != TypeVbin8 && c != TypeVbin32 {
		return nil, false, r.fail(start, c, field, "expected a binary")
	}
	n, err := r.size(c == TypeVbin32, c, field)
	if err != nil {
		return nil, false, err
	}
	p, err := r.take(n, c, field)
	return p, err == nil, err
}

// Symbols decodes a multiple="true" field of symbols (§1.3 "Composite Type
// Representation"): a single symbol, an array of symbols, or null.
func (r *Reader) Symbols(field string) ([]Symbol, error) {
	if r.Null() {
		return nil, nil
	}
	c, err := r.PeekCode()
	if err != nil {
		return nil, err
	}
	if c == TypeSym8 || c == TypeSym32 {
		s, _, err := r.Symbol(field)
		if err != nil {
			return nil, err
		}
		return []Symbol{s}, nil
	}
	start := r.off
	v, err := r.Value()
	if err != nil {
		return nil, err
	}
	a, ok := v.(*Array)
	if !ok {
		return nil, r.fail(start, c, field, "expected a symbol or an array of symbols")
	}
	out := make([]Symbol, 0, len(a.Values))
	for _, e := range a.Values {
		s, ok := e.(Symbol)
		if !ok {
			return nil, r.fail(start, a.Code, field, "array elements must be symbols")
		}
		out = append(out, s)
	}
	return out, nil
}

// compound reads the header of a list or map: its element count, and the offset where
// its encoding ends.
func (r *Reader) compound(c byte, field string) (count, end int, err error) {
	if c == TypeList0 {
		return 0, r.off, nil
	}
	wide := c == TypeList32 || c == TypeMap32
	size, err := r.size(wide, c, field)
	if err != nil {
		return 0, 0, err
	}
	end = r.off + size
	if end > len(r.b) {
		return 0, 0, r.fail(r.off, c, field, "size exceeds remaining bytes")
	}
	w := 1
	if wide {
		w = 4
	}
	if size < w {
		return 0, 0, r.fail(r.off, c, field, "size smaller than its count field")
	}
	cnt, err := r.size(wide, c, field)
	if err != nil {
		return 0, 0, err
	}
	// Every element takes at least one byte: a count larger than the bytes left is a lie.
	if cnt > end-r.off {
		return 0, 0, r.fail(r.off-w, c, field, "element count exceeds size")
	}
	return cnt, end, nil
}

// Fields iterates over the fields of a composite type (§1.3): a described list whose
// descriptor the caller has read. Trailing fields the encoder left out read as null.
// The first error sticks; check it with Done.
type Fields struct {
	r    *Reader
	name string
	n, i int
	end  int
	err  error
}

// Composite starts decoding the list of a composite type named name (used in errors).
func (r *Reader) Composite(name string) *Fields {
	f := &Fields{r: r, name: name}
	start := r.off
	c, err := r.code(name)
	if err != nil {
		f.err = err
		return f
	}
	switch c {
	case TypeList0, TypeList8, TypeList32:
	default:
		f.err = r.fail(start, c, name, "composite type must be encoded as a list")
		return f
	}
	if r.depth >= MaxDepth {
		f.err = r.fail(start, c, name, "nesting too deep")
		return f
	}
	f.n, f.end, f.err = r.compound(c, name)
	return f
}

// Err returns the first error.
func (f *Fields) Err() error { return f.err }

// Next positions the Reader at the next field and reports whether it is present: false
// for a missing trailing field or a null (which it consumes), or after an error. When it
// returns true the caller must decode exactly one value from the Reader.
func (f *Fields) Next() (*Reader, bool) {
	if f.err != nil || f.i >= f.n {
		f.i++
		return f.r, false
	}
	f.i++
	if f.r.off >= f.end {
		f.err = f.r.fail(f.r.off, 0, f.name, "fields overrun the list")
		return f.r, false
	}
	if f.r.Null() {
		return f.r, false
	}
	return f.r, true
}

func (f *Fields) field(field string) string { return f.name + "." + field }

// setErr records err, naming the field it happened in.
func (f *Fields) setErr(err error, field string) {
	if e, ok := err.(*Error); ok && e.Field == "" {
		e.Field = f.field(field)
	}
	f.err = err
}

// Uint decodes the next field as an unsigned integer no larger than max.
func (f *Fields) Uint(field string, max uint64) (uint64, bool) {
	r, ok := f.Next()
	if !ok {
		return 0, false
	}
	start := r.off
	v, _, err := r.Uint("")
	if err == nil && v > max {
		err = r.fail(start, r.b[start], "", "value out of range")
	}
	if err != nil {
		f.setErr(err, field)
		return 0, false
	}
	return v, true
}

// Uint32 decodes the next field as a uint.
func (f *Fields) Uint32(field string) (uint32, bool) {
	v, ok := f.Uint(field, math.MaxUint32)
	return uint32(v), ok
}

// Bool decodes the next field as a boolean.
func (f *Fields) Bool(field string) (bool, bool) {
	r, ok := f.Next()
	if !ok {
		return false, false
	}
	v, _, err := r.Bool("")
	if err != nil {
		f.setErr(err, field)
		return false, false
	}
	return v, true
}

// String decodes the next field as a string.
func (f *Fields) String(field string) (string, bool) {
	r, ok := f.Next()
	if !ok {
		return "", false
	}
	s, err := r.str("", false)
	if err != nil {
		f.setErr(err, field)
		return "", false
	}
	return s, true
}

// Symbol decodes the next field as a symbol.
func (f *Fields) Symbol(field string) (Symbol, bool) {
	r, ok := f.Next()
	if !ok {
		return "", false
	}
	s, err := r.str("", true)
	if err != nil {
		f.setErr(err, field)
		return "", false
	}
	return Symbol(s), true
}

// Binary decodes the next field as a binary aliasing the input.
func (f *Fields) Binary(field string) ([]byte, bool) {
	r, ok := f.Next()
	if !ok {
		return nil, false
	}
	p, _, err := r.Binary("")
	if err != nil {
		f.setErr(err, field)
		return nil, false
	}
	return p, true
}

// Symbols decodes the next field as a multiple symbol field.
func (f *Fields) Symbols(field string) []Symbol {
	r, ok := f.Next()
	if !ok {
		return nil
	}
	s, err := r.Symbols("")
	if err != nil {
		f.setErr(err, field)
	}
	return s
}

// Value decodes the next field generically.
func (f *Fields) Value(field string) any {
	r, ok := f.Next()
	if !ok {
		return nil
	}
	v, err := r.Value()
	if err != nil {
		f.err = err
	}
	return v
}

// Map decodes the next field as a map (fields, annotations, filter sets).
func (f *Fields) Map(field string) Map {
	r, ok := f.Next()
	if !ok {
		return nil
	}
	start := r.off
	v, err := r.Value()
	if err != nil {
		f.err = err
		return nil
	}
	m, ok := v.(Map)
	if !ok {
		f.err = r.fail(start, r.b[start], f.field(field), "expected a map")
	}
	return m
}

// Skip passes over the next field.
func (f *Fields) Skip() {
	r, ok := f.Next()
	if ok {
		if err := r.Skip(); err != nil {
			f.err = err
		}
	}
}

// Fail records a semantic error for field at the current offset, unless an error is
// already recorded.
func (f *Fields) Fail(field, msg string) {
	if f.err == nil {
		f.err = f.r.fail(f.r.off, 0, f.field(field), msg)
	}
}

// Done skips fields the caller did not read (later versions may add fields, §1.3), checks
// that the list's size matched its content, and returns the first error.
func (f *Fields) Done() error {
	for f.err == nil && f.i < f.n {
		f.Skip()
	}
	if f.err == nil && f.r.off != f.end {
		f.err = f.r.fail(f.r.off, 0, f.name, "list size does not match its elements")
	}
	return f.err
}

// Skip passes over one complete value without decoding it.
func (r *Reader) Skip() error {
	start := r.off
	c, err := r.code("")
	if err != nil {
		return err
	}
	if w := fixedWidth(c); w >= 0 {
		_, err := r.take(w, c, "")
		return err
	}
	switch c {
	case TypeDescribed:
		if r.depth >= MaxDepth {
			return r.fail(start, c, "", "nesting too deep")
		}
		r.depth++
		defer func() { r.depth-- }()
		if err := r.Skip(); err != nil {
			return err
		}
		return r.Skip()
	case TypeVbin8, TypeStr8, TypeSym8, TypeList8, TypeMap8, TypeArray8:
		n, err := r.size(false, c, "")
		if err != nil {
			return err
		}
		_, err = r.take(n, c, "")
		return err
	case TypeVbin32, TypeStr32, TypeSym32, TypeList32, TypeMap32, TypeArray32:
		n, err := r.size(true, c, "")
		if err != nil {
			return err
		}
		_, err = r.take(n, c, "")
		return err
	}
	return r.fail(start, c, "", "unknown format code")
}

// symbolicDescriptors maps the symbolic descriptors (§1.2) of the types the gateway
// decodes to their numeric codes, so a peer that uses the symbolic form is understood.
var symbolicDescriptors = map[string]uint64{
	"amqp:open:list": 0x10, "amqp:begin:list": 0x11, "amqp:attach:list": 0x12,
	"amqp:flow:list": 0x13, "amqp:transfer:list": 0x14, "amqp:disposition:list": 0x15,
	"amqp:detach:list": 0x16, "amqp:end:list": 0x17, "amqp:close:list": 0x18,
	"amqp:error:list": 0x1d, "amqp:received:list": 0x23, "amqp:accepted:list": 0x24,
	"amqp:rejected:list": 0x25, "amqp:released:list": 0x26, "amqp:modified:list": 0x27,
	"amqp:source:list": 0x28, "amqp:target:list": 0x29,
	"amqp:sasl-mechanisms:list": 0x40, "amqp:sasl-init:list": 0x41,
	"amqp:sasl-challenge:list": 0x42, "amqp:sasl-response:list": 0x43,
	"amqp:sasl-outcome:list": 0x44,
	"amqp:header:list":       0x70, "amqp:delivery-annotations:map": 0x71,
	"amqp:message-annotations:map": 0x72, "amqp:properties:list": 0x73,
	"amqp:application-properties:map": 0x74, "amqp:data:binary": 0x75,
	"amqp:amqp-sequence:list": 0x76, "amqp:amqp-value:*": 0x77, "amqp:footer:map": 0x78,
}

// Bytes returns the input from offset start up to what has been read, aliasing it.
func (r *Reader) Bytes(start int) []byte { return r.b[start:r.off] }
