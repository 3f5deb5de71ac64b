package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// TestReadFrameSlab checks the reader's buffers: the frames of a burst come from one
// allocation, each keeps its own bytes (writing to or appending to one leaves the others
// alone), and no slab is kept once the burst is read.
func TestReadFrameSlab(t *testing.T) {
	var in []byte
	var want [][]byte
	for i := range 5 {
		payload := []byte(fmt.Sprintf("message %d", i))
		in = frame.Append(in, frame.TypeAMQP, 0, &frame.Transfer{Handle: 0, DeliveryID: uint32(i), HasDeliveryID: true}, payload)
		f := frame.Append(nil, frame.TypeAMQP, 0, &frame.Transfer{Handle: 0, DeliveryID: uint32(i), HasDeliveryID: true}, payload)
		want = append(want, f[frame.HeaderSize:])
	}
	br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
	var slab []byte
	var got [][]byte
	for i := range want {
		_, body, err := readFrameSlab(br, 1<<16, &slab)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if cap(body) != len(body) {
			t.Errorf("frame %d: capacity %d beyond its length %d: an append would write into the next frame", i, cap(body), len(body))
		}
		got = append(got, body)
	}
	if slab != nil {
		t.Errorf("slab of %d bytes kept after the burst, want none", len(slab))
	}
	// One allocation: each frame's bytes follow the previous frame's.
	for i := 1; i < len(got); i++ {
		if unsafe.SliceData(got[i]) != (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(got[i-1])), len(got[i-1]))) {
			t.Errorf("frame %d does not follow frame %d in one buffer", i, i-1)
		}
	}
	for i := range got {
		got[i] = append(got[i], 'x') // copies: capacity ends at the length
	}
	for i := range want {
		if !bytes.Equal(got[i][:len(got[i])-1], want[i]) {
			t.Errorf("frame %d: got %x, want %x", i, got[i], want[i])
		}
	}
}
