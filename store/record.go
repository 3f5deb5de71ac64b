package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Record format versions; see the package documentation for the layouts.
const (
	messageRecordV1 = 1 // no expiry; still read, no longer written
	messageRecordV2 = 2 // adds the expiry time
	deadRecordV1    = 1
	statsRecordV1   = 1
	schemaV1        = 1 // message records version 1 only
	schemaV2        = 2 // message records version 1 or 2, expiry index bucket
	schemaV3        = 3 // routes besides "default" under "q", route counters in meta

	// v2Header is the version byte plus the received and expiry timestamps
	// that open a version 2 message record.
	v2Header = 1 + 8 + 8

	// fixedHeader is the version byte plus the 8-byte timestamp that open
	// both message and dead-letter records.
	fixedHeader = 1 + 8
	// statsRecordLen is the version byte plus four uint64 counters.
	statsRecordLen = 1 + 4*8
)

// seqKey returns the bbolt key of seq: 8 bytes big-endian, so that the byte
// order of keys is the numeric order of seqs.
func seqKey(seq uint64) []byte {
	return appendSeqKey(make([]byte, 0, 8), seq)
}

// appendSeqKey appends seqKey(seq) to b.
func appendSeqKey(b []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(b, seq)
}

// keySeq is the inverse of seqKey.
func keySeq(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("key %x: length %d, want 8: %w", k, len(k), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(k), nil
}

// recordSize is the encoded size of a message record, used to reject
// messages that do not fit a bbolt value before they are queued.
func recordSize(address, source string, payload int) uint64 {
	return v2Header + 2*binary.MaxVarintLen64 + uint64(len(address)) + uint64(len(source)) + uint64(payload)
}

// appendMessageRecordV2 appends the version 2 encoding of a message to b;
// expires is 0 for a message that never expires.
func appendMessageRecordV2(b []byte, received, expires int64, address, source string, payload []byte) []byte {
	b = append(b, messageRecordV2)
	b = binary.BigEndian.AppendUint64(b, uint64(received))
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = binary.AppendUvarint(b, uint64(len(address)))
	b = append(b, address...)
	b = binary.AppendUvarint(b, uint64(len(source)))
	b = append(b, source...)
	return append(b, payload...)
}

// appendMessageRecord appends the version 1 encoding of a message to b. The
// store no longer writes it; it is kept to test reading files of older
// versions.
func appendMessageRecord(b []byte, received int64, address, source string, payload []byte) []byte {
	b = append(b, messageRecordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(received))
	b = binary.AppendUvarint(b, uint64(len(address)))
	b = append(b, address...)
	b = binary.AppendUvarint(b, uint64(len(source)))
	b = append(b, source...)
	return append(b, payload...)
}

// expired reports whether the message is past its expiry time at now (Unix
// nanoseconds).
func (h *messageHeader) expired(now int64) bool { return h.expires != 0 && h.expires <= now }

// messageHeader is a decoded message record whose slices point into the
// record; it is valid only as long as the record is.
type messageHeader struct {
	received int64
	expires  int64 // Unix nanoseconds; 0: never (and always for version 1)
	address  []byte
	source   []byte
	payload  []byte
}

// decodeMessageRecord parses a message record without copying. Errors wrap
// ErrCorrupt and name seq.
func decodeMessageRecord(seq uint64, v []byte) (messageHeader, error) {
	var h messageHeader
	if len(v) < fixedHeader {
		return h, corruptf(seq, "message record of %d bytes is shorter than its %d-byte header", len(v), fixedHeader)
	}
	h.received = int64(binary.BigEndian.Uint64(v[1:9]))
	off := fixedHeader
	switch v[0] {
	case messageRecordV1:
	case messageRecordV2:
		if len(v) < v2Header {
			return h, corruptf(seq, "message record of %d bytes is shorter than its %d-byte header", len(v), v2Header)
		}
		h.expires = int64(binary.BigEndian.Uint64(v[9:17]))
		off = v2Header
	default:
		return h, corruptf(seq, "unknown message record version %d", v[0])
	}
	var err error
	if h.address, off, err = readBytes(seq, v, off, "address"); err != nil {
		return h, err
	}
	if h.source, off, err = readBytes(seq, v, off, "source"); err != nil {
		return h, err
	}
	h.payload = v[off:]
	return h, nil
}

// appendDeadRecord appends the version 1 encoding of a dead letter that wraps
// the message record msg.
func appendDeadRecord(b []byte, at int64, reason string, msg []byte) []byte {
	b = append(b, deadRecordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, uint64(len(reason)))
	b = append(b, reason...)
	return append(b, msg...)
}

// deadHeader is a decoded dead-letter record whose slices point into the
// record.
type deadHeader struct {
	at     int64
	reason []byte
	msg    messageHeader
}

// decodeDeadRecord parses a dead-letter record, including the message record
// it wraps, without copying. Errors wrap ErrCorrupt and name seq.
func decodeDeadRecord(seq uint64, v []byte) (deadHeader, error) {
	var h deadHeader
	if len(v) < fixedHeader {
		return h, corruptf(seq, "dead-letter record of %d bytes is shorter than its %d-byte header", len(v), fixedHeader)
	}
	if v[0] != deadRecordV1 {
		return h, corruptf(seq, "unknown dead-letter record version %d", v[0])
	}
	h.at = int64(binary.BigEndian.Uint64(v[1:9]))
	reason, off, err := readBytes(seq, v, fixedHeader, "reason")
	if err != nil {
		return h, err
	}
	h.reason = reason
	h.msg, err = decodeMessageRecord(seq, v[off:])
	return h, err
}

// readBytes reads a uvarint length at off and the bytes it announces, checking
// both against the end of v. It returns the bytes and the offset after them.
func readBytes(seq uint64, v []byte, off int, field string) ([]byte, int, error) {
	n, w := binary.Uvarint(v[off:])
	if w <= 0 {
		return nil, off, corruptf(seq, "%s length at offset %d is truncated or overflows", field, off)
	}
	off += w
	if n > uint64(len(v)-off) {
		return nil, off, corruptf(seq, "%s at offset %d is %d bytes long, only %d remain", field, off, n, len(v)-off)
	}
	end := off + int(n)
	return v[off:end:end], end, nil
}

// corruptf returns a *CorruptError for seq.
func corruptf(seq uint64, format string, args ...any) error {
	return &CorruptError{Seq: seq, Detail: fmt.Sprintf(format, args...)}
}

func firstByte(v []byte) int {
	if len(v) == 0 {
		return -1
	}
	return int(v[0])
}

// unixNanos converts t to Unix nanoseconds, clamping times outside the
// representable range (years 1678 to 2262).
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}
