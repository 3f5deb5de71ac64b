package codec

import "fmt"

// Type codes (format codes) of the AMQP 1.0 primitive type encodings (§1.6).
const (
	TypeDescribed  byte = 0x00
	TypeNull       byte = 0x40
	TypeBoolTrue   byte = 0x41
	TypeBoolFalse  byte = 0x42
	TypeBool       byte = 0x56
	TypeUbyte      byte = 0x50
	TypeUshort     byte = 0x60
	TypeUint       byte = 0x70
	TypeSmallUint  byte = 0x52
	TypeUint0      byte = 0x43
	TypeUlong      byte = 0x80
	TypeSmallUlong byte = 0x53
	TypeUlong0     byte = 0x44
	TypeByte       byte = 0x51
	TypeShort      byte = 0x61
	TypeInt        byte = 0x71
	TypeSmallInt   byte = 0x54
	TypeLong       byte = 0x81
	TypeSmallLong  byte = 0x55
	TypeFloat      byte = 0x72
	TypeDouble     byte = 0x82
	TypeDecimal32  byte = 0x74
	TypeDecimal64  byte = 0x84
	TypeDecimal128 byte = 0x94
	TypeChar       byte = 0x73
	TypeTimestamp  byte = 0x83
	TypeUUID       byte = 0x98
	TypeVbin8      byte = 0xa0
	TypeVbin32     byte = 0xb0
	TypeStr8       byte = 0xa1
	TypeStr32      byte = 0xb1
	TypeSym8       byte = 0xa3
	TypeSym32      byte = 0xb3
	TypeList0      byte = 0x45
	TypeList8      byte = 0xc0
	TypeList32     byte = 0xd0
	TypeMap8       byte = 0xc1
	TypeMap32      byte = 0xd1
	TypeArray8     byte = 0xe0
	TypeArray32    byte = 0xf0
)

// Symbol is an AMQP symbol (§1.6.21): ASCII text used for names and error conditions.
type Symbol string

// UUID is an AMQP uuid (§1.6.18).
type UUID [16]byte

// Char is an AMQP char (§1.6.16), a single Unicode code point.
type Char rune

// Timestamp is an AMQP timestamp (§1.6.17): milliseconds since the Unix epoch.
type Timestamp int64

// Decimal holds an AMQP decimal32, decimal64 or decimal128 (§1.6.13–§1.6.15) as its raw
// IEEE 754 bytes; the gateway never computes with them.
type Decimal struct {
	Code  byte
	Bytes []byte
}

// Described is a described type (§1.2, "Described Types") whose descriptor the decoder
// does not interpret.
type Described struct {
	Descriptor any
	Value      any
}

// List is a decoded AMQP list (§1.6.22).
type List []any

// Pair is one key/value of a [Map].
type Pair struct {
	Key, Value any
}

// Map is a decoded AMQP map (§1.6.23). It keeps the wire order and allows keys of any
// type, so a map decodes and re-encodes without change.
type Map []Pair

// Array is a decoded AMQP array (§1.6.24): elements that share one constructor.
type Array struct {
	Code       byte // element format code, after any descriptor
	Descriptor any  // element descriptor for arrays of described types, or nil
	Values     []any
}

// Error is a decoding error. Offset is relative to the start of the Reader's input.
type Error struct {
	Offset int
	Code   byte // the type code being decoded, when known
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("amqp decode: offset %d", e.Offset)
	if e.Code != 0 {
		s += fmt.Sprintf(": type 0x%02x", e.Code)
	}
	if e.Field != "" {
		s += ": field " + e.Field
	}
	return s + ": " + e.Msg
}
