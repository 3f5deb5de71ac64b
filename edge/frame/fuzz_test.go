package frame

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary frame bodies to Decode (both frame types). It checks that
// nothing panics and that encoding is a fixpoint after one round: decode → encode →
// decode → encode → decode gives the same performative twice.
func FuzzDecode(f *testing.F) {
	for _, b := range []Body{
		&Open{ContainerID: "c", MaxFrameSize: 65536, ChannelMax: 10, IdleTimeout: 1000},
		&Begin{NextOutgoingID: 1, IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 7},
		&Attach{Name: "l", Handle: 1, Role: RoleSender, HasDeliveryCount: true, MaxMessageSize: 100},
		&Flow{IncomingWindow: 1, NextOutgoingID: 2, OutgoingWindow: 3, Handle: 1, HasHandle: true, LinkCredit: 5, HasLinkCredit: true},
		&Transfer{Handle: 1, DeliveryID: 2, HasDeliveryID: true, DeliveryTag: []byte{1}, HasDeliveryTag: true, More: true},
		&Disposition{Role: RoleReceiver, First: 1, Last: 4, HasLast: true, Settled: true, State: &Accepted{}},
		&Detach{Handle: 1, Closed: true, Error: Errorf(ErrDecode, "x")},
		&End{}, &Close{Error: Errorf(ErrFramingError, "y")},
	} {
		fr := Append(nil, TypeAMQP, 0, b, nil)
		f.Add(byte(TypeAMQP), fr[HeaderSize:])
	}
	fr := Append(nil, TypeSASL, 0, &SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00p")}, nil)
	f.Add(byte(TypeSASL), fr[HeaderSize:])
	// Every frame real clients sent, from the connection fuzzer's captured corpus.
	for _, stream := range capturedStreams(f) {
		for len(stream) >= HeaderSize {
			if string(stream[:4]) == "AMQP" {
				stream = stream[HeaderSize:]
				continue
			}
			h, err := ParseHeader([HeaderSize]byte(stream[:HeaderSize]), 1<<20)
			if err != nil || int(h.Size) > len(stream) {
				break
			}
			f.Add(h.Type, stream[int(h.DOff)*4:h.Size])
			stream = stream[h.Size:]
		}
	}
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		typ &= 1
		b, payload, err := Decode(typ, body)
		if err != nil || b == nil {
			return
		}
		if b.Code() == CodeSASLInit || b.Code() == CodeSASLResponse {
			return // encoders exist for tests only; nothing to compare
		}
		once := roundTrip(t, typ, b, payload)
		twice := roundTrip(t, typ, once, payload)
		// Compared as encodings: values may hold NaN, which is not equal to itself.
		if a, b := Append(nil, typ, 0, once, payload), Append(nil, typ, 0, twice, payload); !bytes.Equal(a, b) {
			t.Fatalf("encoding not stable:\n%#v\n%#v", once, twice)
		}
	})
}

func roundTrip(t *testing.T, typ byte, b Body, payload []byte) Body {
	t.Helper()
	fr := Append(nil, typ, 0, b, payload)
	h, err := ParseHeader([HeaderSize]byte(fr[:HeaderSize]), 1<<30)
	if err != nil {
		t.Fatalf("header of re-encoded %T: %v", b, err)
	}
	got, _, err := Decode(h.Type, fr[HeaderSize:])
	if err != nil {
		t.Fatalf("decode of re-encoded %#v: %v", b, err)
	}
	return got
}

// capturedStreams reads the byte streams in ../testdata/fuzz/FuzzConn (Go's corpus file
// format: a header line, then one []byte literal).
func capturedStreams(f *testing.F) [][]byte {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "fuzz", "FuzzConn", "*"))
	var out [][]byte
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		_, lit, ok := strings.Cut(strings.TrimSpace(string(data)), "\n[]byte(")
		if !ok {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		out = append(out, []byte(s))
	}
	return out
}
