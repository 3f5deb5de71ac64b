package packet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Header is a packet's fixed header (§2.1 in 3.1.1, §2.1.1 in 5.0).
type Header struct {
	Type      Type
	Flags     byte // the low nibble of the first byte
	Remaining int  // Remaining Length: the bytes after the fixed header
}

// Size returns the size of the whole packet: fixed header and Remaining Length.
func (h Header) Size() int { return 1 + varintLen(uint32(h.Remaining)) + h.Remaining }

// ReadHeader reads a fixed header from r. An error other than an *Error is the reader's
// (io.EOF before the first byte: the peer closed the connection between packets).
func ReadHeader(r *bufio.Reader) (Header, error) {
	first, err := r.ReadByte()
	if err != nil {
		return Header{}, err
	}
	var v uint32
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
		if i == 3 && c&0x80 != 0 {
			return Header{}, malformed("remaining length longer than 4 bytes")
		}
		if i > 0 && c == 0 {
			// MQTT 5 §1.5.5 requires the shortest encoding; 3.1.1 implies it.
			return Header{}, malformed("remaining length not in its shortest form")
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			break
		}
	}
	return Header{Type: Type(first >> 4), Flags: first & 0x0f, Remaining: int(v)}, nil
}

// eagerBody is the largest body Read allocates before its bytes arrive.
const eagerBody = 64 << 10

// Read reads one whole packet from r: its fixed header, then its body into a new
// buffer. A packet larger than maxSize bytes (whole packet; 0: MaxRemainingLength) is
// not read: Read returns an *Error with PacketTooLarge and the header.
func Read(r *bufio.Reader, maxSize int) (Header, []byte, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return h, nil, err
	}
	if maxSize > 0 && h.Size() > maxSize {
		return h, nil, &Error{Code: PacketTooLarge, Msg: fmt.Sprintf("%s of %d bytes is larger than the maximum packet size %d", h.Type, h.Size(), maxSize)}
	}
	var body []byte
	if h.Remaining <= eagerBody {
		body = make([]byte, h.Remaining)
		_, err = io.ReadFull(r, body)
	} else {
		// A peer that announces a large packet and then trickles it gets memory only
		// as fast as it sends bytes.
		body, err = io.ReadAll(io.LimitReader(r, int64(h.Remaining)))
		if err == nil && len(body) < h.Remaining {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, body, nil
}
