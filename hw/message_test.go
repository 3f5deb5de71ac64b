package hw

import (
	"encoding/json"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
)

func TestBody(t *testing.T) {
	r := Reading{
		Time: time.Date(2025, 3, 1, 13, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Values: []Value{
			{Name: "temperature", V: 25.08, Unit: "°C"},
			{Name: "raw", V: int64(-20000)},
			{Name: "ok", V: true},
			{Name: "note", V: `say "hi"`},
			{Name: "none", V: nil},
			{Name: "small", V: 7.8125e-6, Unit: "V"},
			{Name: "nested", V: json.RawMessage(` { "a" : [1, 2] } `)},
		},
	}
	got, err := r.Body("attic", "bme280")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"input":"attic","kind":"bme280","time":"2025-03-01T12:00:00.123Z","values":{"temperature":25.08,"raw":-20000,` +
		`"ok":true,"note":"say \"hi\"","none":null,"small":0.0000078125,"nested":{"a":[1,2]}},"units":{"temperature":"°C","small":"V"}}`
	if string(got) != want {
		t.Errorf("Body() =\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) {
		t.Error("Body() is not valid JSON")
	}
	r = Reading{Time: r.Time, Type: "GGA", Values: []Value{{Name: "x", V: "y"}}}
	if got, _ := r.Body("gps", "serial"); string(got) != `{"input":"gps","kind":"serial","time":"2025-03-01T12:00:00.123Z","type":"GGA","values":{"x":"y"}}` {
		t.Errorf("Body() without units = %s", got)
	}
	if s := (Reading{Values: []Value{{Name: "t", V: 1.5, Unit: "°C"}, {Name: "n", V: int64(2)}}}).String(); s != "t 1.5 °C, n 2" {
		t.Errorf("String() = %q", s)
	}
	for _, v := range []any{float32(1), []int{1}, json.RawMessage(`{`)} {
		if _, err := (Reading{Values: []Value{{Name: "bad", V: v}}}).Body("a", "b"); err == nil {
			t.Errorf("Body() with %T %v succeeded", v, v)
		}
	}
}

// TestEncodeDecodesWithGoAMQP checks the hand-made encoding against an independent
// decoder: go-amqp, which the uplink uses to forward the message.
func TestEncodeDecodesWithGoAMQP(t *testing.T) {
	in, err := New(Spec{Name: "attic", Kind: BME280}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := Reading{Time: time.Date(2025, 3, 1, 12, 0, 0, 5e6, time.UTC), Values: []Value{{Name: "temperature", V: 25.08, Unit: "°C"}}}
	m, err := in.Message(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Address != "sensors/attic" || m.Source != "input:attic" || !m.Received.Equal(r.Time) {
		t.Errorf("Message() = %q from %q at %v", m.Address, m.Source, m.Received)
	}
	var msg amqp.Message
	if err := msg.UnmarshalBinary(m.Payload); err != nil {
		t.Fatalf("go-amqp cannot decode the encoding: %v\n% x", err, m.Payload)
	}
	body, _ := r.Body("attic", "bme280")
	if string(msg.GetData()) != string(body) {
		t.Errorf("data = %s, want %s", msg.GetData(), body)
	}
	p := msg.Properties
	if p == nil || p.Subject == nil || *p.Subject != "attic" || p.ContentType == nil || *p.ContentType != "application/json" ||
		p.CreationTime == nil || !p.CreationTime.Equal(r.Time) || p.MessageID != "input:attic:1740830400005000000" {
		t.Errorf("properties = %+v", p)
	}
	if src := msg.Annotations[SourceAnnotation]; src != "input:attic" || len(msg.Annotations) != 1 {
		t.Errorf("annotations = %v, want only %s = input:attic", msg.Annotations, SourceAnnotation)
	}
	if msg.Header == nil || !msg.Header.Durable {
		t.Errorf("header = %+v, want durable", msg.Header)
	}
	// go-amqp encodes the same message again, as the uplink does.
	if _, err := msg.MarshalBinary(); err != nil {
		t.Errorf("go-amqp cannot re-encode it: %v", err)
	}

	// A body of 256 bytes or more takes the long encodings (vbin32, list32).
	long := Reading{Time: r.Time, Values: []Value{{Name: "note", V: string(make([]byte, 300))}}}
	var msg2 amqp.Message
	m2, err := in.Message(long)
	if err != nil {
		t.Fatal(err)
	}
	if err := msg2.UnmarshalBinary(m2.Payload); err != nil || len(msg2.GetData()) < 300 {
		t.Errorf("long body: %v, %d bytes", err, len(msg2.GetData()))
	}
}
