package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the size of the fixed frame header (§2.3.1).
const HeaderSize = 8

// MinMaxFrameSize is MIN-MAX-FRAME-SIZE (§2.7.1, open): the frame size every peer must
// accept, and the largest frame allowed before the open frames are exchanged.
const MinMaxFrameSize = 512

// Frame types (§2.3.1 and §5.3.1).
const (
	TypeAMQP byte = 0x00
	TypeSASL byte = 0x01
)

// Protocol headers (§2.2 and §5.2.1): "AMQP", a protocol id, and version 1.0.0.
var (
	ProtoAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	ProtoSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Header is a decoded frame header.
type Header struct {
	Size    uint32 // total frame size, header included
	DOff    uint8  // data offset in 4-byte words, at least 2
	Type    byte
	Channel uint16
}

// ErrFraming marks a frame header that cannot be valid; the connection must close with
// amqp:connection:framing-error (§2.8.15).
var ErrFraming = errors.New("framing error")

// ParseHeader decodes and checks a frame header against max, the largest frame the
// receiver accepts.
func ParseHeader(p [HeaderSize]byte, max uint32) (Header, error) {
	h := Header{
		Size:    binary.BigEndian.Uint32(p[0:4]),
		DOff:    p[4],
		Type:    p[5],
		Channel: binary.BigEndian.Uint16(p[6:8]),
	}
	switch {
	case h.Size < HeaderSize:
		return h, fmt.Errorf("%w: frame size %d is smaller than the frame header", ErrFraming, h.Size)
	case h.DOff < 2:
		return h, fmt.Errorf("%w: data offset %d is below the minimum of 2", ErrFraming, h.DOff)
	case uint32(h.DOff)*4 > h.Size:
		return h, fmt.Errorf("%w: data offset %d points past the frame end (size %d)", ErrFraming, h.DOff, h.Size)
	case h.Size > max:
		return h, fmt.Errorf("%w: frame size %d exceeds the negotiated max-frame-size %d", ErrFraming, h.Size, max)
	case h.Type != TypeAMQP && h.Type != TypeSASL:
		return h, fmt.Errorf("%w: unknown frame type 0x%02x", ErrFraming, h.Type)
	}
	return h, nil
}

// AppendHeader appends a frame header for a frame of the given body size.
func AppendHeader(b []byte, typ byte, channel uint16, bodySize int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(HeaderSize+bodySize))
	b = append(b, 2, typ)
	return binary.BigEndian.AppendUint16(b, channel)
}

// Empty is an empty AMQP frame (no body), sent to keep a connection alive (§2.4.5).
var Empty = []byte{0, 0, 0, 8, 2, TypeAMQP, 0, 0}
