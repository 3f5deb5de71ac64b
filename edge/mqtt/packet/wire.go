package packet

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// reader reads the data types of §1.5 from a packet body. The first error sticks: later
// reads return zero values, and err reports it.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte(field string) byte {
	if r.err != nil {
		return 0
	}
	if r.left() < 1 {
		r.fail(malformed("%s: packet ends at offset %d", field, r.off))
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) uint16(field string) uint16 {
	if r.err != nil {
		return 0
	}
	if r.left() < 2 {
		r.fail(malformed("%s: packet ends at offset %d", field, r.off))
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) uint32(field string) uint32 {
	if r.err != nil {
		return 0
	}
	if r.left() < 4 {
		r.fail(malformed("%s: packet ends at offset %d", field, r.off))
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

// varint reads a Variable Byte Integer (5.0 §1.5.5): at most four bytes, and in the
// fewest bytes that encode the value.
func (r *reader) varint(field string) uint32 {
	if r.err != nil {
		return 0
	}
	v, n, err := decodeVarint(r.b[r.off:])
	if err != nil {
		r.fail(malformed("%s at offset %d: %v", field, r.off, err))
		return 0
	}
	r.off += n
	return v
}

// binary reads Binary Data (§1.5.6): a two-byte length and that many bytes. The result
// aliases the body.
func (r *reader) binary(field string) []byte {
	n := int(r.uint16(field))
	if r.err != nil {
		return nil
	}
	if r.left() < n {
		r.fail(malformed("%s: length %d at offset %d exceeds the %d bytes left", field, n, r.off-2, r.left()))
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// string reads a UTF-8 Encoded String (§1.5.4 in 5.0, §1.5.3 in 3.1.1): well-formed
// UTF-8 without surrogates and without U+0000, or the packet is malformed.
func (r *reader) string(field string) string {
	start := r.off
	b := r.binary(field)
	if r.err != nil {
		return ""
	}
	if err := checkUTF8(b); err != "" {
		r.fail(malformed("%s at offset %d: %s", field, start, err))
		return ""
	}
	return string(b)
}

// ValidString reports whether s can be sent as a UTF-8 Encoded String (§1.5.4 in
// 5.0, §1.5.3 in 3.1.1): at most 65,535 bytes of well-formed UTF-8 without U+0000.
func ValidString(s string) bool {
	return len(s) <= 65535 && checkUTF8([]byte(s)) == ""
}

// checkUTF8 returns why b is not an MQTT UTF-8 string, or "".
func checkUTF8(b []byte) string {
	if !utf8.Valid(b) { // utf8.Valid also refuses encoded surrogates (U+D800–U+DFFF)
		return "not well-formed UTF-8"
	}
	if strings.IndexByte(string(b), 0) >= 0 {
		return "contains U+0000"
	}
	return ""
}

// rest returns the bytes left.
func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.off:len(r.b):len(r.b)]
	r.off = len(r.b)
	return v
}

// decodeVarint decodes a Variable Byte Integer from the start of b and returns its value
// and length.
func decodeVarint(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, errShortVarint
		}
		c := b[i]
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, 0, errLongVarint
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errVarintTooLong
}

type wireError string

func (e wireError) Error() string { return string(e) }

const (
	errShortVarint   wireError = "variable byte integer ends early"
	errLongVarint    wireError = "variable byte integer not in its shortest form"
	errVarintTooLong wireError = "variable byte integer longer than 4 bytes"
)

// appendVarint appends v (at most MaxRemainingLength) as a Variable Byte Integer.
func appendVarint(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func varintLen(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBinary(b []byte, p []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	return append(b, p...)
}
