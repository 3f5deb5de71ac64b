package uplink

import (
	"bytes"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

func encode(t testing.TB, m *amqp.Message) []byte {
	t.Helper()
	p, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepare(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		msg      *amqp.Message // encoded as the payload
		payload  []byte        // instead of msg
		address  string
		key      string // Config.SourceAnnotation resolved; "" is SourceAnnotation, "-" none
		received time.Time
		check    func(t *testing.T, got *amqp.Message, sent []byte)
		wantErr  string
	}{
		{
			name: "annotations",
			msg: &amqp.Message{
				DeliveryAnnotations: amqp.Annotations{"x-opt-hop": "for the gateway"},
				Annotations:         amqp.Annotations{"x-opt-device": "kept", SourceAnnotation: "spoofed"},
				Data:                [][]byte{[]byte("x")},
			},
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				if got.DeliveryAnnotations != nil {
					t.Errorf("delivery-annotations: got %v, want none", got.DeliveryAnnotations)
				}
				want := amqp.Annotations{"x-opt-device": "kept", SourceAnnotation: "dev-1"}
				if !reflect.DeepEqual(got.Annotations, want) {
					t.Errorf("annotations: got %v, want %v", got.Annotations, want)
				}
			},
		},
		{
			name: "source annotation added",
			msg:  amqp.NewMessage([]byte("x")),
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				if got.Annotations[SourceAnnotation] != "dev-1" {
					t.Errorf("annotations: got %v, want %s=dev-1", got.Annotations, SourceAnnotation)
				}
			},
		},
		{
			name: "source annotation under another key",
			msg: &amqp.Message{
				Annotations: amqp.Annotations{"x-opt-device-id": "spoofed", SourceAnnotation: "spoofed too", "x-opt-kept": int64(1)},
				Data:        [][]byte{[]byte("x")},
			},
			key: "x-opt-device-id",
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				want := amqp.Annotations{"x-opt-device-id": "dev-1", "x-opt-kept": int64(1)}
				if !reflect.DeepEqual(got.Annotations, want) {
					t.Errorf("annotations: got %v, want %v", got.Annotations, want)
				}
			},
		},
		{
			name: "no source annotation",
			msg:  &amqp.Message{Properties: &amqp.MessageProperties{MessageID: uint64(7)}, Value: "v"},
			key:  "-",
			check: func(t *testing.T, got *amqp.Message, sent []byte) {
				// No message-annotations section at all (descriptor 0x72).
				if got.Annotations != nil || bytes.Contains(sent, []byte{0x00, 0x53, 0x72}) {
					t.Errorf("got annotations %v in %x, want none", got.Annotations, sent)
				}
			},
		},
		{
			name: "no source annotation, a device's claim dropped",
			msg: &amqp.Message{
				Annotations: amqp.Annotations{SourceAnnotation: "spoofed", "x-opt-kept": "k"},
				Value:       "v",
			},
			key: "-",
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				want := amqp.Annotations{"x-opt-kept": "k"}
				if !reflect.DeepEqual(got.Annotations, want) {
					t.Errorf("annotations: got %v, want %v", got.Annotations, want)
				}
			},
		},
		{
			name: "bare message unchanged",
			msg: &amqp.Message{
				Header:                &amqp.MessageHeader{Durable: true, Priority: 9, DeliveryCount: 2},
				Properties:            &amqp.MessageProperties{MessageID: amqp.UUID{1, 2, 3}, To: ptr("t"), GroupSequence: ptr(uint32(7))},
				ApplicationProperties: map[string]any{"a": "b", "n": int32(-5), "u": uint64(1 << 40), "f": 1.5, "bin": []byte{1}},
				Data:                  [][]byte{[]byte("first"), []byte("second"), {}},
				Footer:                amqp.Annotations{"x-sig": "s"},
			},
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				want := &amqp.Message{
					Header:                &amqp.MessageHeader{Durable: true, Priority: 9, DeliveryCount: 2},
					Properties:            &amqp.MessageProperties{MessageID: amqp.UUID{1, 2, 3}, To: ptr("t"), GroupSequence: ptr(uint32(7))},
					ApplicationProperties: map[string]any{"a": "b", "n": int32(-5), "u": uint64(1 << 40), "f": 1.5, "bin": []byte{1}},
					Annotations:           amqp.Annotations{SourceAnnotation: "dev-1"},
					Data:                  [][]byte{[]byte("first"), []byte("second"), {}},
					Footer:                amqp.Annotations{"x-sig": "s"},
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			},
		},
		{
			name: "amqp-value null",
			msg:  &amqp.Message{Value: amqp.Null{}},
			check: func(t *testing.T, got *amqp.Message, sent []byte) {
				// go-amqp decodes a null value to nil, so look at the bytes.
				if !bytes.HasSuffix(sent, nullValueSection) {
					t.Errorf("got %x, want it to end with a null amqp-value section %x", sent, nullValueSection)
				}
			},
		},
		{
			name: "a header of defaults left out",
			// Proton C's send example: an empty header, which go-amqp decodes as
			// the defaults (priority 4).
			payload: []byte{0x00, 0x53, 0x70, 0x45, 0x00, 0x53, 0x77, 0xa1, 0x01, 'v'},
			check: func(t *testing.T, got *amqp.Message, sent []byte) {
				if got.Header != nil || bytes.Contains(sent, []byte{0x00, 0x53, 0x70}) {
					t.Errorf("got header %+v in %x, want none", got.Header, sent)
				}
				if got.Value != "v" {
					t.Errorf("body: got %v, want v", got.Value)
				}
			},
		},
		{
			name: "a header that differs from the defaults kept",
			msg:  &amqp.Message{Header: &amqp.MessageHeader{Priority: 4, FirstAcquirer: true}, Value: "v"},
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				if got.Header == nil || !got.Header.FirstAcquirer || got.Header.Priority != 4 {
					t.Errorf("header: got %+v, want first-acquirer and priority 4", got.Header)
				}
			},
		},
		{
			name:     "ttl reduced by the time stored",
			msg:      &amqp.Message{Header: &amqp.MessageHeader{TTL: time.Hour}, Value: "v"},
			received: now.Add(-10*time.Minute - 1500*time.Microsecond),
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				if want := 50*time.Minute - 2*time.Millisecond; got.Header.TTL != want {
					t.Errorf("ttl: got %v, want %v", got.Header.TTL, want)
				}
			},
		},
		{
			name:     "ttl nearly run out",
			msg:      &amqp.Message{Header: &amqp.MessageHeader{TTL: time.Second}, Value: "v"},
			received: now.Add(-time.Second + time.Microsecond),
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				if got.Header.TTL != time.Millisecond {
					t.Errorf("ttl: got %v, want 1ms (0 would mean none)", got.Header.TTL)
				}
			},
		},
		{
			name:     "ttl with the clock set back",
			msg:      &amqp.Message{Header: &amqp.MessageHeader{TTL: time.Second}, Value: "v"},
			received: now.Add(time.Hour),
			check: func(t *testing.T, got *amqp.Message, _ []byte) {
				if got.Header.TTL != time.Second {
					t.Errorf("ttl: got %v, want 1s", got.Header.TTL)
				}
			},
		},
		{
			name:     "ttl expired",
			msg:      &amqp.Message{Header: &amqp.MessageHeader{TTL: time.Second}, Value: "v"},
			received: now.Add(-time.Second),
			wantErr:  "ttl of 1s expired after 1s in the store",
		},
		{name: "no address", msg: amqp.NewMessage(nil), address: "-", wantErr: "message has no address"},
		{name: "empty payload", payload: []byte{}, wantErr: "message has no body section"},
		{name: "header only", msg: &amqp.Message{Header: &amqp.MessageHeader{Durable: true}}, wantErr: "message has no body section"},
		{name: "unknown section", payload: []byte{0x00, 0x53, 0x7f, 0x40}, wantErr: "cannot decode payload"},
		{name: "truncated", payload: []byte{0x00, 0x53, 0x75, 0xa0, 0x10, 'x'}, wantErr: "cannot decode payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := tt.payload
			if payload == nil {
				payload = encode(t, tt.msg)
			}
			address := "telemetry"
			if tt.address == "-" {
				address = ""
			}
			received := tt.received
			if received.IsZero() {
				received = now
			}
			key := tt.key
			switch key {
			case "":
				key = SourceAnnotation
			case "-":
				key = ""
			}
			out, err := prepare(&store.Message{Seq: 1, Address: address, Source: "dev-1", Received: received, Payload: payload}, "/queue/"+address, "shadowgw:gw:", key, now, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.target != "/queue/telemetry" {
				t.Errorf("target: got %q, want %q", out.target, "/queue/telemetry")
			}
			// What goes on the wire, decoded again as the cloud would.
			enc := encode(t, out.msg)
			// The size is estimated from the stored bytes without encoding (one codec
			// pass per message: Send's); go-amqp checks the exact size against the
			// cloud's limit. The estimate is for the rate limit: close, not exact.
			// It counts what prepare drops (delivery-annotations, a spoofed source
			// annotation), so it may be over by that much.
			dropped := 0
			if tt.msg != nil {
				kept := *tt.msg
				kept.DeliveryAnnotations = nil
				if len(kept.Annotations) > 0 {
					kept.Annotations = maps.Clone(kept.Annotations)
					delete(kept.Annotations, SourceAnnotation)
					delete(kept.Annotations, key)
				}
				dropped = len(payload) - len(encode(t, &kept))
			}
			if d := out.size - len(enc); d < -8 || d > dropped+24 {
				t.Errorf("size estimate: got %d, encoded %d (off by %d, want within -8..%d)", out.size, len(enc), d, dropped+24)
			}
			got := new(amqp.Message)
			if err := got.UnmarshalBinary(enc); err != nil {
				t.Fatalf("decode what would be sent: %v", err)
			}
			tt.check(t, got, enc)
		})
	}
}

// TestModified: a modified outcome with delivery-failed counts the failed delivery
// in the header; a message without header gets one of the defaults, priority 4
// included (§3.2.1), not priority 0.
func TestModified(t *testing.T) {
	for _, tt := range []struct {
		name string
		msg  *amqp.Message
		want amqp.MessageHeader
	}{
		{"no header", &amqp.Message{Value: "v"}, amqp.MessageHeader{Priority: 4, DeliveryCount: 1}},
		{"a header", &amqp.Message{Header: &amqp.MessageHeader{Durable: true, Priority: 7, DeliveryCount: 2}, Value: "v"},
			amqp.MessageHeader{Durable: true, Priority: 7, DeliveryCount: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := modified(encode(t, tt.msg), &amqp.StateModified{DeliveryFailed: true, MessageAnnotations: amqp.Annotations{"x-opt-try": int64(1)}})
			if err != nil {
				t.Fatal(err)
			}
			got := new(amqp.Message)
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if got.Header == nil || *got.Header != tt.want {
				t.Errorf("header: got %+v, want %+v", got.Header, tt.want)
			}
			if got.Annotations["x-opt-try"] != int64(1) || got.Value != "v" {
				t.Errorf("got annotations %v, body %v; want x-opt-try=1, v", got.Annotations, got.Value)
			}
		})
	}
}

// FuzzPrepare feeds arbitrary payloads to prepare: it must not panic, and what it
// would send must decode again and carry the source annotation.
func FuzzPrepare(f *testing.F) {
	seeds := []*amqp.Message{
		amqp.NewMessage([]byte("hello")),
		{Value: "v", Annotations: amqp.Annotations{"k": int64(1)}},
		{Header: &amqp.MessageHeader{TTL: time.Minute}, Sequence: [][]any{{"a", 1.5}}, ApplicationProperties: map[string]any{"x": true}},
		{Properties: &amqp.MessageProperties{MessageID: "id", CorrelationID: []byte{1}}, Value: amqp.Null{}, Footer: amqp.Annotations{"f": "g"}},
	}
	for _, m := range seeds {
		f.Add(encode(f, m))
	}
	f.Add([]byte{0x00, 0x53, 0x77, 0x40})
	now := time.Now()
	spare := amqp.Annotations{} // reused, as a lane does
	f.Fuzz(func(t *testing.T, payload []byte) {
		clear(spare)
		out, err := prepare(&store.Message{Address: "a", Source: "s", Received: now, Payload: payload}, "", "shadowgw:gw:", SourceAnnotation, now, spare)
		if err != nil {
			return
		}
		enc, err := out.msg.MarshalBinary()
		if err != nil {
			// Send fails the same way before writing; the lane must dead-letter the
			// message, not take the link for broken.
			if !unsendable(err, out.msg) {
				t.Fatalf("encode prepared message: %v, not classified as unsendable", err)
			}
			return
		}
		var again amqp.Message
		if err := again.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode prepared message: %v\npayload %x\nsent    %x", err, payload, enc)
		}
		if again.Annotations[SourceAnnotation] != "s" {
			t.Fatalf("source annotation: got %v", again.Annotations)
		}
	})
}

func TestCheckSourceAnnotation(t *testing.T) {
	for _, tt := range []struct {
		key, wantErr string
	}{
		{"", ""},
		{"none", ""},
		{SourceAnnotation, ""},
		{"x-opt-device-id", ""},
		{"x-device-id", `"x-device-id": want a symbol beginning with x-opt- (AMQP 1.0 §3.2.10 reserves the others), or none`},
		{"device", `"device": want a symbol beginning with x-opt-`},
		{"x-opt-", `"x-opt-": want a symbol beginning with x-opt-`},
		{"x-opt-dev id", `"x-opt-dev id": byte 9 is not a printable ASCII character (a symbol is ASCII, §1.6.21)`},
		{"x-opt-gerät", `byte 9 is not a printable ASCII character`},
	} {
		err := CheckSourceAnnotation(tt.key)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("CheckSourceAnnotation(%q) = %v, want %q", tt.key, err, tt.wantErr)
		}
	}
}
