package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// roundTrip encodes p, reads and decodes it back.
func roundTrip(t *testing.T, p Packet, version byte) Packet {
	t.Helper()
	enc := p.Append(nil, version)
	h, body, err := Read(bufio.NewReader(bytes.NewReader(enc)), 0)
	if err != nil {
		t.Fatalf("%T: read: %v", p, err)
	}
	got, err := Decode(h, body, version)
	if err != nil {
		t.Fatalf("%T: decode %x: %v", p, enc, err)
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	props := Properties{User: []UserProperty{{"k", "v"}, {"k", "w"}}}
	props.ContentType = "text/plain"
	props.Mark(PropContentType)
	props.MessageExpiry = 60
	props.Mark(PropMessageExpiry)
	props.CorrelationData = []byte{0, 1, 2}
	props.Mark(PropCorrelationData)
	props.ResponseTopic = "replies/x"
	props.Mark(PropResponseTopic)
	props.PayloadFormat = 1
	props.Mark(PropPayloadFormat)
	connProps := Properties{}
	connProps.SessionExpiry = 3600
	connProps.Mark(PropSessionExpiry)
	connProps.ReceiveMaximum = 10
	connProps.Mark(PropReceiveMaximum)
	cases := []struct {
		name    string
		version byte
		p       Packet
	}{
		{"connect 3.1.1", V311, &Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 30, ClientID: "c1",
			Will: &Will{QoS: 1, Retain: true, Topic: "will/c1", Payload: []byte("gone")}, HasUser: true, User: "u", HasPassword: true, Password: []byte("p")}},
		{"connect 5", V5, &Connect{ProtocolName: "MQTT", Version: V5, KeepAlive: 60, ClientID: "c5", Props: connProps,
			Will: &Will{QoS: 2, Topic: "will/c5", Payload: []byte{}, Props: props}}},
		{"publish qos0 3.1.1", V311, &Publish{Topic: "a/b", Payload: []byte("x")}},
		{"publish qos1 5", V5, &Publish{QoS: 1, ID: 7, Topic: "a/b", Props: props, Payload: []byte("hello")}},
		{"publish qos2 dup retain", V5, &Publish{QoS: 2, Dup: true, Retain: true, ID: 65535, Topic: "t", Payload: []byte{}}},
		{"puback 3.1.1", V311, &Ack{Kind: PUBACK, ID: 1}},
		{"pubrec 5 code", V5, &Ack{Kind: PUBREC, ID: 2, Code: NotAuthorized}},
		{"pubrel", V5, &Ack{Kind: PUBREL, ID: 3}},
		{"pubcomp 5 props", V5, &Ack{Kind: PUBCOMP, ID: 4, Code: PacketIDNotFound, Props: Properties{User: []UserProperty{{"a", "b"}}}}},
		{"subscribe 5", V5, &Subscribe{ID: 9, Subs: []Subscription{{Filter: "command/#", QoS: 1, NoLocal: true, RetainHandling: 2}}}},
		{"subscribe 3.1.1", V311, &Subscribe{ID: 9, Subs: []Subscription{{Filter: "a/+", QoS: 2}, {Filter: "b"}}}},
		{"suback", V5, &Suback{ID: 9, Codes: []ReasonCode{UnspecifiedError}}},
		{"unsubscribe", V5, &Unsubscribe{ID: 10, Filters: []string{"a", "b"}}},
		{"unsuback 5", V5, &Unsuback{ID: 10, Codes: []ReasonCode{NoSubscriptionExisted}}},
		{"pingreq", V311, &Pingreq{}},
		{"pingresp", V5, &Pingresp{}},
		{"disconnect 3.1.1", V311, &Disconnect{}},
		{"disconnect 5", V5, &Disconnect{Code: KeepAliveTimeout}},
		{"connack 5", V5, &Connack{SessionPresent: true, Props: connProps}},
		{"auth", V5, &Auth{Code: 0x18}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := roundTrip(t, c.p, c.version)
			if !reflect.DeepEqual(got, c.p) {
				t.Errorf("got %+v, want %+v", got, c.p)
			}
		})
	}
}

// TestMalformed checks that bad input is refused with the right reason code.
func TestMalformed(t *testing.T) {
	cases := []struct {
		name    string
		version byte
		in      []byte
		code    ReasonCode
	}{
		{"reserved type 0", V5, []byte{0x00, 0x00}, MalformedPacket},
		{"pingreq with flags", V311, []byte{0xC1, 0x00}, MalformedPacket},
		{"pingreq with a body", V311, []byte{0xC0, 0x01, 0x00}, MalformedPacket},
		{"publish qos 3", V311, []byte{0x36, 0x03, 0x00, 0x01, 'a'}, MalformedPacket},
		{"publish dup qos 0", V311, []byte{0x38, 0x03, 0x00, 0x01, 'a'}, MalformedPacket},
		{"publish wildcard", V311, []byte{0x30, 0x03, 0x00, 0x01, '#'}, TopicNameInvalid},
		{"publish empty topic", V311, []byte{0x30, 0x02, 0x00, 0x00}, ProtocolError},
		{"publish id 0", V311, []byte{0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00}, MalformedPacket},
		{"publish string past the end", V311, []byte{0x30, 0x03, 0x00, 0x05, 'a'}, MalformedPacket},
		{"publish bad utf-8", V311, []byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}, MalformedPacket},
		{"publish U+0000", V311, []byte{0x30, 0x04, 0x00, 0x02, 'a', 0x00}, MalformedPacket},
		{"publish surrogate", V311, []byte{0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80}, MalformedPacket},
		{"publish unknown property", V5, []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x7F, 0x00}, MalformedPacket},
		{"publish property not allowed", V5, []byte{0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x11, 0x00, 0x00}, MalformedPacket},
		{"publish property twice", V5, []byte{0x30, 0x08, 0x00, 0x01, 'a', 0x04, 0x01, 0x00, 0x01, 0x00}, ProtocolError},
		{"publish payload format 2", V5, []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x01, 0x02}, ProtocolError},
		{"property length past the end", V5, []byte{0x30, 0x05, 0x00, 0x01, 'a', 0x09, 0x01}, MalformedPacket},
		{"pubrel flags 0", V311, []byte{0x60, 0x02, 0x00, 0x01}, MalformedPacket},
		{"puback short", V311, []byte{0x40, 0x01, 0x00}, MalformedPacket},
		{"subscribe no filter", V311, []byte{0x82, 0x02, 0x00, 0x01}, ProtocolError},
		{"subscribe qos 3", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}, MalformedPacket},
		{"connect reserved flag", V311, []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x01, 'c'}, MalformedPacket},
		{"connect level 3", V311, []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x03, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'}, UnsupportedProtocolVersion},
		{"connect bad name", V311, []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'}, ProtocolError},
		{"connect password without user 3.1.1", V311, []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x42, 0x00, 0x3C, 0x00, 0x01, 'c'}, MalformedPacket},
		{"auth in 3.1.1", V311, []byte{0xF0, 0x00}, MalformedPacket},
		{"remaining length not shortest", V311, []byte{0xC0, 0x80, 0x00}, MalformedPacket},
		{"remaining length 5 bytes", V311, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, MalformedPacket},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, body, err := Read(bufio.NewReader(bytes.NewReader(c.in)), 1<<20)
			if err == nil {
				_, err = Decode(h, body, c.version)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want an *Error with code 0x%02x", err, byte(c.code))
			}
			if pe.Code != c.code {
				t.Errorf("got code 0x%02x (%v), want 0x%02x", byte(pe.Code), err, byte(c.code))
			}
		})
	}
}

func TestReadLimits(t *testing.T) {
	big := (&Publish{Topic: "t", Payload: make([]byte, 1000)}).Append(nil, V311)
	_, _, err := Read(bufio.NewReader(bytes.NewReader(big)), 500)
	if CodeOf(err) != PacketTooLarge {
		t.Errorf("oversize: got %v, want PacketTooLarge", err)
	}
	_, _, err = Read(bufio.NewReader(bytes.NewReader(big[:20])), 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: got %v, want io.ErrUnexpectedEOF", err)
	}
	_, _, err = Read(bufio.NewReader(bytes.NewReader(nil)), 0)
	if err != io.EOF {
		t.Errorf("empty: got %v, want io.EOF", err)
	}
}

// TestSplitReads feeds a packet one byte at a time.
func TestSplitReads(t *testing.T) {
	enc := (&Publish{QoS: 1, ID: 3, Topic: "a", Payload: []byte("hello")}).Append(nil, V5)
	h, body, err := Read(bufio.NewReaderSize(&oneByte{enc}, 16), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(h, body, V5)
	if err != nil || string(p.(*Publish).Payload) != "hello" {
		t.Fatalf("got %+v, %v", p, err)
	}
}

type oneByte struct{ b []byte }

func (r *oneByte) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestReadLargeBody(t *testing.T) {
	p := &Publish{Topic: "big", Payload: bytes.Repeat([]byte{7}, 200<<10)}
	enc := p.Append(nil, V311)
	h, body, err := Read(bufio.NewReader(bytes.NewReader(enc)), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(h, body, V311)
	if err != nil || !bytes.Equal(got.(*Publish).Payload, p.Payload) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := Read(bufio.NewReader(bytes.NewReader(enc[:100<<10])), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated large packet: got %v, want io.ErrUnexpectedEOF", err)
	}
}
