package message

import (
	"testing"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// BenchmarkParse parses a message like the load tool's: properties with a message-id,
// four application properties, a 100-byte data section.
func BenchmarkParse(b *testing.B) {
	var w codec.Writer
	w.Descriptor(SecProperties)
	mark := w.BeginList()
	w.String("bench-1-42")
	w.EndList(mark, 1)
	w.Descriptor(SecApplicationProperties)
	mark = w.BeginMap()
	w.String("bench-run")
	w.String("5f0c2a9e13b7")
	w.String("bench-device")
	w.Long(3)
	w.String("bench-seq")
	w.Long(4242)
	w.String("bench-sent")
	w.Long(1764700000000000000)
	w.EndMap(mark, 4)
	w.Descriptor(SecData)
	w.Binary(make([]byte, 100))
	p := w.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := Parse(p); err != nil {
			b.Fatal(err)
		}
	}
}
