package mqtt

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// FuzzCommandPublish feeds stored commands (AMQP 1.0 message sections, as the cloud
// sent them) to parseCommand and commandPublish, as delivery does: nothing may panic,
// and a PUBLISH that comes out must encode and decode again with its payload.
func FuzzCommandPublish(f *testing.F) {
	for _, m := range []*amqp.Message{
		command(1),
		{Value: "text"},
		{Data: [][]byte{[]byte("a"), []byte("b")}, ApplicationProperties: map[string]any{"k": uint32(1), "t": time.UnixMilli(5)}},
		{Sequence: [][]any{{"x"}}},
	} {
		raw, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ac, err := parseCommand(raw)
		if err != nil {
			return
		}
		st := &stream{subs: []sub{{prefix: "command///req/", hono: true, qos: 1}}}
		qos, topic := st.form(&ac)
		p := commandPublish(&Command{Expires: time.Now().Add(time.Hour)}, &ac, topic, qos, packet.V5, time.Now())
		p.ID = 1
		b := p.Append(nil, packet.V5)
		h, body, err := packet.Read(bufioReader(b), 0)
		if err != nil {
			t.Fatalf("the PUBLISH does not read back: %v", err)
		}
		q, err := packet.Decode(h, body, packet.V5)
		if err != nil {
			t.Fatalf("the PUBLISH does not decode: %v (topic %q, props %+v)", err, topic, p.Props)
		}
		if string(q.(*packet.Publish).Payload) != string(ac.body) {
			t.Fatal("payload changed")
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
