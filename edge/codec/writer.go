package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Writer appends AMQP 1.0 encodings to a byte slice, choosing the smallest encoding for
// each value. The zero value is ready to use; Bytes returns what was written. A Writer is
// not safe for concurrent use.
type Writer struct {
	b []byte
}

// Bytes returns the encoded bytes; they alias the Writer's buffer.
func (w *Writer) Bytes() []byte { return w.b }

// Len returns the number of bytes written.
func (w *Writer) Len() int { return len(w.b) }

// Reset empties the Writer, keeping its buffer.
func (w *Writer) Reset() { w.b = w.b[:0] }

// SetBytes makes w append to b.
func (w *Writer) SetBytes(b []byte) { w.b = b }

// Raw appends p unchanged: an encoding produced elsewhere.
func (w *Writer) Raw(p []byte) { w.b = append(w.b, p...) }

// Null appends a null.
func (w *Writer) Null() { w.b = append(w.b, TypeNull) }

// Bool appends a boolean.
func (w *Writer) Bool(v bool) {
	if v {
		w.b = append(w.b, TypeBoolTrue)
	} else {
		w.b = append(w.b, TypeBoolFalse)
	}
}

// Ubyte appends a ubyte.
func (w *Writer) Ubyte(v uint8) { w.b = append(w.b, TypeUbyte, v) }

// Ushort appends a ushort.
func (w *Writer) Ushort(v uint16) { w.b = binary.BigEndian.AppendUint16(append(w.b, TypeUshort), v) }

// Uint appends a uint.
func (w *Writer) Uint(v uint32) {
	switch {
	case v == 0:
		w.b = append(w.b, TypeUint0)
	case v < 256:
		w.b = append(w.b, TypeSmallUint, byte(v))
	default:
		w.b = binary.BigEndian.AppendUint32(append(w.b, TypeUint), v)
	}
}

// Ulong appends a ulong.
func (w *Writer) Ulong(v uint64) {
	switch {
	case v == 0:
		w.b = append(w.b, TypeUlong0)
	case v < 256:
		w.b = append(w.b, TypeSmallUlong, byte(v))
	default:
		w.b = binary.BigEndian.AppendUint64(append(w.b, TypeUlong), v)
	}
}

// Int appends an int.
func (w *Writer) Int(v int32) {
	if v >= -128 && v <= 127 {
		w.b = append(w.b, TypeSmallInt, byte(int8(v)))
		return
	}
	w.b = binary.BigEndian.AppendUint32(append(w.b, TypeInt), uint32(v))
}

// Long appends a long.
func (w *Writer) Long(v int64) {
	if v >= -128 && v <= 127 {
		w.b = append(w.b, TypeSmallLong, byte(int8(v)))
		return
	}
	w.b = binary.BigEndian.AppendUint64(append(w.b, TypeLong), uint64(v))
}

// Timestamp appends a timestamp.
func (w *Writer) Timestamp(ms Timestamp) {
	w.b = binary.BigEndian.AppendUint64(append(w.b, TypeTimestamp), uint64(ms))
}

func (w *Writer) variable(short, long byte, p []byte) {
	if len(p) < 256 {
		w.b = append(w.b, short, byte(len(p)))
	} else {
		w.b = binary.BigEndian.AppendUint32(append(w.b, long), uint32(len(p)))
	}
	w.b = append(w.b, p...)
}

// String appends a string.
func (w *Writer) String(s string) {
	if len(s) < 256 {
		w.b = append(w.b, TypeStr8, byte(len(s)))
	} else {
		w.b = binary.BigEndian.AppendUint32(append(w.b, TypeStr32), uint32(len(s)))
	}
	w.b = append(w.b, s...)
}

// Symbol appends a symbol.
func (w *Writer) Symbol(s Symbol) {
	if len(s) < 256 {
		w.b = append(w.b, TypeSym8, byte(len(s)))
	} else {
		w.b = binary.BigEndian.AppendUint32(append(w.b, TypeSym32), uint32(len(s)))
	}
	w.b = append(w.b, s...)
}

// Binary appends a binary.
func (w *Writer) Binary(p []byte) { w.variable(TypeVbin8, TypeVbin32, p) }

// Descriptor appends the start of a described type with a numeric descriptor.
func (w *Writer) Descriptor(code uint64) {
	w.b = append(w.b, TypeDescribed)
	w.Ulong(code)
}

// BeginList starts a list; elements are appended after it and EndList completes it.
// It returns the mark EndList needs.
func (w *Writer) BeginList() int {
	m := len(w.b)
	w.b = append(w.b, TypeList32, 0, 0, 0, 0, 0, 0, 0, 0)
	return m
}

// EndList completes the list begun at mark with count elements, using the list0 or
// list8 encoding when the content allows.
func (w *Writer) EndList(mark, count int) {
	w.endCompound(mark, count, TypeList0, TypeList8, TypeList32)
}

// BeginMap starts a map; EndMap completes it.
func (w *Writer) BeginMap() int { return w.BeginList() }

// EndMap completes the map begun at mark with pairs key/value pairs.
func (w *Writer) EndMap(mark, pairs int) { w.endCompound(mark, 2*pairs, 0, TypeMap8, TypeMap32) }

func (w *Writer) endCompound(mark, count int, zero, short, long byte) {
	content := len(w.b) - mark - 9
	if count == 0 && zero != 0 {
		w.b = append(w.b[:mark], zero)
		return
	}
	if content+1 < 256 && count < 256 {
		w.b[mark], w.b[mark+1], w.b[mark+2] = short, byte(content+1), byte(count)
		copy(w.b[mark+3:], w.b[mark+9:])
		w.b = w.b[:len(w.b)-6]
		return
	}
	w.b[mark] = long
	binary.BigEndian.PutUint32(w.b[mark+1:], uint32(content+4))
	binary.BigEndian.PutUint32(w.b[mark+5:], uint32(count))
}

// SymbolArray appends an array of symbols (§1.6.24), the form of multiple symbol fields
// such as offered-capabilities and sasl-server-mechanisms.
func (w *Writer) SymbolArray(s []Symbol) {
	mark := len(w.b)
	w.b = append(w.b, TypeArray32, 0, 0, 0, 0, 0, 0, 0, 0, TypeSym32)
	for _, v := range s {
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(v)))
		w.b = append(w.b, v...)
	}
	binary.BigEndian.PutUint32(w.b[mark+1:], uint32(len(w.b)-mark-5))
	binary.BigEndian.PutUint32(w.b[mark+5:], uint32(len(s)))
}

// Value appends any value the Reader can decode, in the encoding the Reader would decode
// to the same Go value. It returns an error for Go types that have no AMQP mapping.
func (w *Writer) Value(v any) error {
	switch v := v.(type) {
	case nil:
		w.Null()
	case bool:
		w.Bool(v)
	case uint8:
		w.Ubyte(v)
	case uint16:
		w.Ushort(v)
	case uint32:
		w.Uint(v)
	case uint64:
		w.Ulong(v)
	case int8:
		w.b = append(w.b, TypeByte, byte(v))
	case int16:
		w.b = binary.BigEndian.AppendUint16(append(w.b, TypeShort), uint16(v))
	case int32:
		w.Int(v)
	case int64:
		w.Long(v)
	case float32:
		w.b = binary.BigEndian.AppendUint32(append(w.b, TypeFloat), math.Float32bits(v))
	case float64:
		w.b = binary.BigEndian.AppendUint64(append(w.b, TypeDouble), math.Float64bits(v))
	case Decimal:
		w.b = append(append(w.b, v.Code), v.Bytes...)
	case Char:
		w.b = binary.BigEndian.AppendUint32(append(w.b, TypeChar), uint32(v))
	case Timestamp:
		w.Timestamp(v)
	case UUID:
		w.b = append(append(w.b, TypeUUID), v[:]...)
	case []byte:
		w.Binary(v)
	case string:
		w.String(v)
	case Symbol:
		w.Symbol(v)
	case *Described:
		w.b = append(w.b, TypeDescribed)
		if err := w.Value(v.Descriptor); err != nil {
			return err
		}
		return w.Value(v.Value)
	case List:
		m := w.BeginList()
		for _, e := range v {
			if err := w.Value(e); err != nil {
				return err
			}
		}
		w.EndList(m, len(v))
	case Map:
		m := w.BeginMap()
		for _, p := range v {
			if err := w.Value(p.Key); err != nil {
				return err
			}
			if err := w.Value(p.Value); err != nil {
				return err
			}
		}
		w.EndMap(m, len(v))
	case *Array:
		return w.array(v)
	default:
		return fmt.Errorf("amqp encode: no AMQP type for %T", v)
	}
	return nil
}

// array appends an array in the array32 encoding, each element in the element
// constructor's own format (so the encoding round-trips through the Reader).
func (w *Writer) array(a *Array) error {
	mark := len(w.b)
	w.b = append(w.b, TypeArray32, 0, 0, 0, 0, 0, 0, 0, 0)
	if a.Descriptor != nil {
		w.b = append(w.b, TypeDescribed)
		if err := w.Value(a.Descriptor); err != nil {
			return err
		}
	}
	w.b = append(w.b, a.Code)
	var tmp Writer
	for _, e := range a.Values {
		if d, ok := e.(*Described); ok && a.Descriptor != nil {
			e = d.Value
		}
		tmp.Reset()
		if err := tmp.elem(a.Code, e); err != nil {
			return err
		}
		w.b = append(w.b, tmp.b...)
	}
	binary.BigEndian.PutUint32(w.b[mark+1:], uint32(len(w.b)-mark-5))
	binary.BigEndian.PutUint32(w.b[mark+5:], uint32(len(a.Values)))
	return nil
}

// elem appends v in the encoding named by code, without the code itself.
func (w *Writer) elem(code byte, v any) error {
	var full Writer
	switch code {
	case TypeList0, TypeList8, TypeList32, TypeMap8, TypeMap32:
		// Compound elements must all use the array's constructor: re-encode in the
		// 32-bit form when the array says so.
		if err := full.Value(v); err != nil {
			return err
		}
		return w.widen(code, full.b)
	case TypeArray8, TypeArray32:
		a, ok := v.(*Array)
		if !ok {
			return fmt.Errorf("amqp encode: array element %T is not an array", v)
		}
		if err := full.array(a); err != nil {
			return err
		}
		return w.widen(code, full.b)
	}
	if err := full.fixedForm(code, v); err != nil {
		return err
	}
	w.b = append(w.b, full.b[1:]...)
	return nil
}

// fixedForm appends v using exactly the encoding code.
func (w *Writer) fixedForm(code byte, v any) error {
	bad := fmt.Errorf("amqp encode: array element %T does not fit type 0x%02x", v, code)
	switch code {
	case TypeBoolTrue, TypeBoolFalse, TypeUint0, TypeUlong0:
		w.b = append(w.b, code)
	case TypeBool:
		b, ok := v.(bool)
		if !ok {
			return bad
		}
		w.b = append(w.b, code, 0)
		if b {
			w.b[len(w.b)-1] = 1
		}
	case TypeSmallUint:
		u, ok := v.(uint32)
		if !ok {
			return bad
		}
		w.b = append(w.b, code, byte(u))
	case TypeSmallUlong:
		u, ok := v.(uint64)
		if !ok {
			return bad
		}
		w.b = append(w.b, code, byte(u))
	case TypeSmallInt:
		i, ok := v.(int32)
		if !ok {
			return bad
		}
		w.b = append(w.b, code, byte(int8(i)))
	case TypeSmallLong:
		i, ok := v.(int64)
		if !ok {
			return bad
		}
		w.b = append(w.b, code, byte(int8(i)))
	case TypeUint:
		u, ok := v.(uint32)
		if !ok {
			return bad
		}
		w.b = binary.BigEndian.AppendUint32(append(w.b, code), u)
	case TypeUlong:
		u, ok := v.(uint64)
		if !ok {
			return bad
		}
		w.b = binary.BigEndian.AppendUint64(append(w.b, code), u)
	case TypeInt:
		i, ok := v.(int32)
		if !ok {
			return bad
		}
		w.b = binary.BigEndian.AppendUint32(append(w.b, code), uint32(i))
	case TypeLong:
		i, ok := v.(int64)
		if !ok {
			return bad
		}
		w.b = binary.BigEndian.AppendUint64(append(w.b, code), uint64(i))
	case TypeVbin8, TypeVbin32, TypeStr8, TypeStr32, TypeSym8, TypeSym32:
		var p []byte
		switch s := v.(type) {
		case []byte:
			p = s
		case string:
			p = []byte(s)
		case Symbol:
			p = []byte(s)
		default:
			return bad
		}
		w.b = append(w.b, code)
		if code == TypeVbin8 || code == TypeStr8 || code == TypeSym8 {
			if len(p) > 255 {
				return bad
			}
			w.b = append(w.b, byte(len(p)))
		} else {
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(p)))
		}
		w.b = append(w.b, p...)
	default:
		var tmp Writer
		if err := tmp.Value(v); err != nil {
			return err
		}
		if len(tmp.b) == 0 || tmp.b[0] != code {
			return bad
		}
		w.b = append(w.b, tmp.b...)
	}
	return nil
}

// widen appends the compound encoding enc (with its code) in the form named by code,
// without the code.
func (w *Writer) widen(code byte, enc []byte) error {
	var size, count uint32
	var content []byte
	switch enc[0] {
	case TypeList0:
		content = nil
	case TypeList8, TypeMap8, TypeArray8:
		size, count, content = uint32(enc[1]), uint32(enc[2]), enc[3:]
		_ = size
	case TypeList32, TypeMap32, TypeArray32:
		count, content = binary.BigEndian.Uint32(enc[5:9]), enc[9:]
	}
	switch code {
	case TypeList8, TypeMap8, TypeArray8:
		if len(content)+1 > 255 || count > 255 {
			return fmt.Errorf("amqp encode: array element too large for type 0x%02x", code)
		}
		w.b = append(w.b, byte(len(content)+1), byte(count))
	case TypeList0:
		if len(content) != 0 {
			return fmt.Errorf("amqp encode: non-empty list in a list0 array")
		}
		return nil
	default:
		w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(content)+4))
		w.b = binary.BigEndian.AppendUint32(w.b, count)
	}
	w.b = append(w.b, content...)
	return nil
}
