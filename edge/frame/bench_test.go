package frame

import (
	"bytes"
	"testing"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// BenchmarkDecodeTransfer decodes one transfer frame body carrying a 256-byte message,
// as the edge does for every message a device sends.
func BenchmarkDecodeTransfer(b *testing.B) {
	var w codec.Writer
	w.Descriptor(0x75)
	w.Binary(bytes.Repeat([]byte{'x'}, 256))
	fr := Append(nil, TypeAMQP, 0, &Transfer{Handle: 0, DeliveryID: 12345, HasDeliveryID: true,
		DeliveryTag: []byte{1, 2, 3, 4, 5, 6, 7, 8}, HasDeliveryTag: true}, w.Bytes())
	body := fr[HeaderSize:]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		t, payload, err := Decode(TypeAMQP, body)
		if err != nil || t.(*Transfer).DeliveryID != 12345 || len(payload) != len(w.Bytes()) {
			b.Fatal("bad decode", err)
		}
	}
}

// BenchmarkEncodeDisposition encodes the settled accepted disposition (a range) the
// edge sends for every group commit.
func BenchmarkEncodeDisposition(b *testing.B) {
	d := &Disposition{Role: RoleReceiver, First: 100, Last: 163, HasLast: true, Settled: true, State: &Accepted{}}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], TypeAMQP, 1, d, nil)
	}
	b.SetBytes(int64(len(buf)))
}
