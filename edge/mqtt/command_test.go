package mqtt

import (
	"bytes"
	"errors"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// The stored AMQP message (AMQP 1.0 §3.2) becomes the PUBLISH the README's table
// describes.
func TestCommandPublish(t *testing.T) {
	uuid := amqp.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	cases := []struct {
		name    string
		msg     *amqp.Message
		payload string
		format  bool   // Payload Format Indicator 1
		corr    string // "" for none
		user    int
		err     bool
	}{
		{"data sections concatenated", &amqp.Message{Data: [][]byte{[]byte("ab"), []byte("cd")}}, "abcd", false, "", 0, false},
		{"amqp-value string", &amqp.Message{Value: "héllo"}, "héllo", true, "", 0, false},
		{"amqp-value binary", &amqp.Message{Value: []byte{0, 1, 2}}, "\x00\x01\x02", false, "", 0, false},
		{"amqp-value map", &amqp.Message{Value: map[string]any{"a": "b"}}, "", false, "", 0, true},
		{"amqp-sequence", &amqp.Message{Sequence: [][]any{{"a"}}}, "", false, "", 0, true},
		{"uuid correlation-id", &amqp.Message{Data: [][]byte{nil}, Properties: &amqp.MessageProperties{CorrelationID: uuid}},
			"", false, "12345678-9abc-def0-0123-456789abcdef", 0, false},
		{"ulong correlation-id", &amqp.Message{Data: [][]byte{nil}, Properties: &amqp.MessageProperties{CorrelationID: uint64(42)}},
			"", false, "42", 0, false},
		{"binary correlation-id", &amqp.Message{Data: [][]byte{nil}, Properties: &amqp.MessageProperties{CorrelationID: []byte{0xff, 0}}},
			"", false, "\xff\x00", 0, false},
		{"application properties", &amqp.Message{Data: [][]byte{nil}, ApplicationProperties: map[string]any{
			"s": "x", "b": true, "f": 1.5, "t": time.UnixMilli(0), "u": amqp.UUID{}, "l": []any{1}}}, "", false, "", 5, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			ac, err := parseCommand(raw)
			if tc.err {
				var nf errNoMQTTForm
				if !errors.As(err, &nf) {
					t.Fatalf("got %v, want no MQTT form", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := commandPublish(&Command{}, &ac, "command/x/", 1, packet.V5, time.Now())
			if string(p.Payload) != tc.payload {
				t.Errorf("payload %q, want %q", p.Payload, tc.payload)
			}
			if got := p.Props.Has(packet.PropPayloadFormat) && p.Props.PayloadFormat == 1; got != tc.format {
				t.Errorf("payload format indicator %v, want %v", got, tc.format)
			}
			if got := p.Props.Has(packet.PropCorrelationData); got != (tc.corr != "") || !bytes.Equal(p.Props.CorrelationData, []byte(tc.corr)) {
				t.Errorf("correlation data %q (%v), want %q", p.Props.CorrelationData, got, tc.corr)
			}
			if len(p.Props.User) != tc.user {
				t.Errorf("user properties %v, want %d", p.Props.User, tc.user)
			}
			for _, u := range p.Props.User {
				if u.Key == "t" && u.Value != "1970-01-01T00:00:00.000Z" || u.Key == "f" && u.Value != "1.5" || u.Key == "b" && u.Value != "true" {
					t.Errorf("user property %v", u)
				}
			}
			if p.Props.Has(packet.PropMessageExpiry) {
				t.Errorf("message expiry %d for a command that never expires", p.Props.MessageExpiry)
			}
		})
	}
}
