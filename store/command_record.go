package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// The records of the command buckets: a queued command (version, received,
// expires, then length-prefixed supersede key, address, source and payload) and a
// dead-lettered one.

const (
	cmdRecordV1 = 1
	cmdHeader   = 1 + 8 + 8
)

type cmdHeaderRec struct {
	received, expires    int64
	key, address, source []byte
	payload              []byte
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendCmdRecord(b []byte, received, expires int64, key, address, source string, payload []byte) []byte {
	b = append(b, cmdRecordV1)
	b = binary.BigEndian.AppendUint64(b, uint64(received))
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = appendString(b, key)
	b = appendString(b, address)
	b = appendString(b, source)
	return append(b, payload...)
}

// readString reads a uvarint-prefixed string from v at *off.
func readString(v []byte, off *int) ([]byte, bool) {
	n, w := binary.Uvarint(v[*off:])
	if w <= 0 || n > uint64(len(v)-*off-w) {
		return nil, false
	}
	*off += w
	s := v[*off : *off+int(n)]
	*off += int(n)
	return s, true
}

func decodeCmdRecord(v []byte) (cmdHeaderRec, error) {
	var h cmdHeaderRec
	if len(v) < cmdHeader || v[0] != cmdRecordV1 {
		return h, fmt.Errorf("command record of %d bytes: %w", len(v), ErrCorrupt)
	}
	h.received = int64(binary.BigEndian.Uint64(v[1:9]))
	h.expires = int64(binary.BigEndian.Uint64(v[9:17]))
	off := cmdHeader
	var ok1, ok2, ok3 bool
	h.key, ok1 = readString(v, &off)
	if ok1 {
		h.address, ok2 = readString(v, &off)
	}
	if ok2 {
		h.source, ok3 = readString(v, &off)
	}
	if !ok3 {
		return h, fmt.Errorf("command record: bad lengths: %w", ErrCorrupt)
	}
	h.payload = v[off:]
	return h, nil
}

func (h cmdHeaderRec) command(seq uint64, device string) Command {
	return Command{
		Seq: seq, Device: device, Key: string(h.key), Address: string(h.address), Source: string(h.source),
		Received: time.Unix(0, h.received), Expires: time.Unix(0, h.expires), Payload: bytes.Clone(h.payload),
	}
}

func decodeCmdDead(v []byte) (CommandDeadLetter, error) {
	var d CommandDeadLetter
	if len(v) < 9 || v[0] != 1 {
		return d, fmt.Errorf("command dead letter: %w", ErrCorrupt)
	}
	d.At = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9])))
	off := 9
	dev, ok := readString(v, &off)
	reason, ok2 := readString(v, &off)
	if !ok || !ok2 {
		return d, fmt.Errorf("command dead letter: %w", ErrCorrupt)
	}
	h, err := decodeCmdRecord(v[off:])
	if err != nil {
		return d, err
	}
	d.Command = h.command(0, string(dev))
	d.Reason = string(reason)
	return d, nil
}

var cmdOpNames = [...]string{"append", "delete", "dead letter", "rewrite", "purge"}
