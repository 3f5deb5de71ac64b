package codec

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// Value decodes one value of any type. Unsigned integers decode to uint8, uint16,
// uint32 or uint64, signed ones to int8 … int64, floats to float32 or float64, strings
// to string, symbols to [Symbol], binaries to []byte (aliasing the input), timestamps to
// [Timestamp], and compound values to [List], [Map] and *[Array]. A described value whose
// descriptor is not interpreted decodes to *[Described].
func (r *Reader) Value() (any, error) {
	start := r.off
	c, err := r.code("")
	if err != nil {
		return nil, err
	}
	switch c {
	case TypeNull:
		return nil, nil
	case TypeDescribed:
		return r.described(start)
	case TypeList0, TypeList8, TypeList32:
		return r.list(start, c)
	case TypeMap8, TypeMap32:
		return r.mapValue(start, c)
	case TypeArray8, TypeArray32:
		return r.array(start, c)
	}
	return r.primitive(start, c)
}

func (r *Reader) enter(start int, c byte) error {
	if r.depth >= MaxDepth {
		return r.fail(start, c, "", "nesting too deep")
	}
	r.depth++
	return nil
}

func (r *Reader) described(start int) (any, error) {
	if err := r.enter(start, TypeDescribed); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	d, err := r.Value()
	if err != nil {
		return nil, err
	}
	switch d.(type) {
	case uint64, Symbol:
	default:
		return nil, r.fail(start+1, 0, "", "descriptor must be a ulong or a symbol")
	}
	v, err := r.Value()
	if err != nil {
		return nil, err
	}
	return &Described{Descriptor: d, Value: v}, nil
}

func (r *Reader) list(start int, c byte) (any, error) {
	if err := r.enter(start, c); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	n, end, err := r.compound(c, "")
	if err != nil {
		return nil, err
	}
	l := make(List, 0, n)
	for i := 0; i < n; i++ {
		v, err := r.Value()
		if err != nil {
			return nil, err
		}
		l = append(l, v)
	}
	if r.off != end {
		return nil, r.fail(start, c, "", "list size does not match its elements")
	}
	return l, nil
}

func (r *Reader) mapValue(start int, c byte) (any, error) {
	if err := r.enter(start, c); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	n, end, err := r.compound(c, "")
	if err != nil {
		return nil, err
	}
	if n%2 != 0 {
		return nil, r.fail(start, c, "", "map has an odd number of elements")
	}
	m := make(Map, 0, n/2)
	for i := 0; i < n; i += 2 {
		k, err := r.Value()
		if err != nil {
			return nil, err
		}
		v, err := r.Value()
		if err != nil {
			return nil, err
		}
		m = append(m, Pair{Key: k, Value: v})
	}
	if r.off != end {
		return nil, r.fail(start, c, "", "map size does not match its elements")
	}
	return m, nil
}

func (r *Reader) array(start int, c byte) (any, error) {
	if err := r.enter(start, c); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	wide := c == TypeArray32
	size, err := r.size(wide, c, "")
	if err != nil {
		return nil, err
	}
	end := r.off + size
	n, err := r.size(wide, c, "")
	if err != nil {
		return nil, err
	}
	if n > end-r.off {
		return nil, r.fail(start, c, "", "element count exceeds size")
	}
	a := &Array{}
	ec, err := r.code("")
	if err != nil {
		return nil, err
	}
	if ec == TypeDescribed {
		dstart := r.off
		if a.Descriptor, err = r.Value(); err != nil {
			return nil, err
		}
		switch a.Descriptor.(type) {
		case uint64, Symbol:
		default:
			return nil, r.fail(dstart, 0, "", "array element descriptor must be a ulong or a symbol")
		}
		if ec, err = r.code(""); err != nil {
			return nil, err
		}
		if ec == TypeDescribed {
			return nil, r.fail(r.off-1, ec, "", "invalid array element constructor")
		}
	}
	if ec == TypeNull || !knownCode(ec) {
		return nil, r.fail(r.off-1, ec, "", "invalid array element constructor")
	}
	a.Code = widened(ec)
	a.Values = make([]any, 0, n)
	for i := 0; i < n; i++ {
		var v any
		switch ec {
		case TypeList0, TypeList8, TypeList32:
			v, err = r.list(r.off, ec)
		case TypeMap8, TypeMap32:
			v, err = r.mapValue(r.off, ec)
		case TypeArray8, TypeArray32:
			v, err = r.array(r.off, ec)
		case TypeDescribed, TypeNull:
			err = r.fail(r.off, ec, "", "invalid array element constructor")
		default:
			v, err = r.primitive(r.off, ec)
		}
		if err != nil {
			return nil, err
		}
		if a.Descriptor != nil {
			v = &Described{Descriptor: a.Descriptor, Value: v}
		}
		a.Values = append(a.Values, v)
	}
	if r.off != end {
		return nil, r.fail(start, c, "", "array size does not match its elements")
	}
	return a, nil
}

// primitive decodes the payload of a primitive encoding whose code c was read.
func (r *Reader) primitive(start int, c byte) (any, error) {
	if w := fixedWidth(c); w >= 0 {
		p, err := r.take(w, c, "")
		if err != nil {
			return nil, err
		}
		switch c {
		case TypeNull:
			return nil, nil
		case TypeBoolTrue:
			return true, nil
		case TypeBoolFalse:
			return false, nil
		case TypeBool:
			if p[0] > 1 {
				return nil, r.fail(start, c, "", "boolean byte must be 0 or 1")
			}
			return p[0] == 1, nil
		case TypeUbyte:
			return p[0], nil
		case TypeUshort:
			return binary.BigEndian.Uint16(p), nil
		case TypeUint:
			return binary.BigEndian.Uint32(p), nil
		case TypeSmallUint:
			return uint32(p[0]), nil
		case TypeUint0:
			return uint32(0), nil
		case TypeUlong:
			return binary.BigEndian.Uint64(p), nil
		case TypeSmallUlong:
			return uint64(p[0]), nil
		case TypeUlong0:
			return uint64(0), nil
		case TypeByte:
			return int8(p[0]), nil
		case TypeShort:
			return int16(binary.BigEndian.Uint16(p)), nil
		case TypeInt:
			return int32(binary.BigEndian.Uint32(p)), nil
		case TypeSmallInt:
			return int32(int8(p[0])), nil
		case TypeLong:
			return int64(binary.BigEndian.Uint64(p)), nil
		case TypeSmallLong:
			return int64(int8(p[0])), nil
		case TypeFloat:
			return math.Float32frombits(binary.BigEndian.Uint32(p)), nil
		case TypeDouble:
			return math.Float64frombits(binary.BigEndian.Uint64(p)), nil
		case TypeDecimal32, TypeDecimal64, TypeDecimal128:
			return Decimal{Code: c, Bytes: p}, nil
		case TypeChar:
			return Char(binary.BigEndian.Uint32(p)), nil
		case TypeTimestamp:
			return Timestamp(binary.BigEndian.Uint64(p)), nil
		case TypeUUID:
			var u UUID
			copy(u[:], p)
			return u, nil
		case TypeList0:
			return List{}, nil
		}
	}
	switch c {
	case TypeVbin8, TypeVbin32, TypeStr8, TypeStr32, TypeSym8, TypeSym32:
		// The code was read (or, in an array, is shared): the size and bytes follow.
		n, err := r.size(c&0xf0 == 0xb0, c, "")
		if err != nil {
			return nil, err
		}
		p, err := r.take(n, c, "")
		if err != nil {
			return nil, err
		}
		switch c {
		case TypeVbin8, TypeVbin32:
			return p, nil
		case TypeSym8, TypeSym32:
			return Symbol(p), nil
		}
		if !utf8.Valid(p) {
			return nil, r.fail(start, c, "", "string is not valid UTF-8")
		}
		return string(p), nil
	}
	return nil, r.fail(start, c, "", "unknown format code")
}

// widened maps the zero-width element constructors (true, false, uint0, ulong0, list0)
// to their one-byte forms. Arrays are reported, and so re-encoded, with the wider
// constructor: the Reader accepts no more elements than an array has bytes, and a
// re-encoded array must decode again.
func widened(code byte) byte {
	switch code {
	case TypeBoolTrue, TypeBoolFalse:
		return TypeBool
	case TypeUint0:
		return TypeSmallUint
	case TypeUlong0:
		return TypeSmallUlong
	case TypeList0:
		return TypeList8
	}
	return code
}

// knownCode reports whether c is a format code of the type system (§1.6).
func knownCode(c byte) bool {
	if fixedWidth(c) >= 0 {
		return true
	}
	switch c {
	case TypeVbin8, TypeVbin32, TypeStr8, TypeStr32, TypeSym8, TypeSym32,
		TypeList8, TypeList32, TypeMap8, TypeMap32, TypeArray8, TypeArray32:
		return true
	}
	return false
}
