package packet

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecode feeds whole packets, as a client would send them, to Read and Decode for
// version 4 (3.1.1) or 5. It checks that nothing panics, that an error is an *Error or
// a reader error, and that a packet that decodes encodes to bytes that decode to the
// same encoding again. The corpus in testdata/fuzz/FuzzDecode was recorded from
// mosquitto_pub, mosquitto_sub and Paho.
func FuzzDecode(f *testing.F) {
	f.Add(byte(V311), (&Publish{QoS: 1, ID: 1, Topic: "a/b", Payload: []byte("x")}).Append(nil, V311))
	f.Add(byte(V5), (&Ack{Kind: PUBREL, ID: 9}).Append(nil, V5))
	f.Add(byte(V5), (&Disconnect{Code: DisconnectWithWill}).Append(nil, V5))
	f.Add(byte(V5), (&Unsubscribe{ID: 3, Filters: []string{"x"}}).Append(nil, V5))
	f.Fuzz(func(t *testing.T, v byte, data []byte) {
		version := V311
		if v%2 == 1 {
			version = V5
		}
		h, body, err := Read(bufio.NewReader(bytes.NewReader(data)), 1<<16)
		if err != nil {
			return
		}
		p, err := Decode(h, body, version)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		ev := version
		if c, ok := p.(*Connect); ok {
			ev = c.Version
		}
		enc := p.Append(nil, ev)
		h2, body2, err := Read(bufio.NewReader(bytes.NewReader(enc)), 0)
		if err != nil {
			t.Fatalf("re-read %T %x: %v", p, enc, err)
		}
		p2, err := Decode(h2, body2, ev)
		if err != nil {
			t.Fatalf("re-decode %T %x: %v", p, enc, err)
		}
		if enc2 := p2.Append(nil, ev); !bytes.Equal(enc, enc2) {
			t.Fatalf("%T: encoding not stable:\n%x\n%x", p, enc, enc2)
		}
	})
}
