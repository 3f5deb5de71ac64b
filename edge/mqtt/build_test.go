package mqtt

import (
	"bytes"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/message"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

func TestBuild(t *testing.T) {
	var props packet.Properties
	props.ContentType = "application/json"
	props.Mark(packet.PropContentType)
	props.MessageExpiry = 90
	props.Mark(packet.PropMessageExpiry)
	props.CorrelationData = []byte{1, 2, 3}
	props.Mark(packet.PropCorrelationData)
	props.ResponseTopic = "replies/1"
	props.Mark(packet.PropResponseTopic)
	props.User = []packet.UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}
	received := time.UnixMilli(1_700_000_000_123)
	payload, info := Build(Publication{Topic: "t", QoS: 1, Props: &props, Payload: []byte("{}")}, "dev", received)

	parsed, err := message.Parse(payload)
	if err != nil {
		t.Fatalf("message.Parse: %v", err)
	}
	if parsed != info {
		t.Errorf("Build's info %+v, message.Parse says %+v", info, parsed)
	}
	if info.TTL != 90*time.Second || !info.AbsoluteExpiryTime.Equal(received.Add(90*time.Second)) || !info.Durable {
		t.Errorf("info %+v", info)
	}
	var m amqp.Message
	if err := m.UnmarshalBinary(payload); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.GetData(), []byte("{}")) || *m.Properties.ContentType != "application/json" || *m.Properties.ReplyTo != "replies/1" ||
		!bytes.Equal(m.Properties.CorrelationID.([]byte), []byte{1, 2, 3}) || m.Header.TTL != 90*time.Second ||
		m.ApplicationProperties["a"] != "1" || m.ApplicationProperties["b"] != "2" || m.Annotations[SourceAnnotation] != "dev" ||
		m.Annotations[QoSAnnotation] != uint8(1) || m.Annotations[RetainAnnotation] != false || m.Annotations[UserPropertiesAnnotation] != nil ||
		!m.Properties.CreationTime.Equal(received) {
		t.Errorf("decoded %+v %+v %+v %v", m.Header, m.Properties, m.ApplicationProperties, m.Annotations)
	}

	// 3.1.1: no properties; a non-ASCII content type; repeated keys.
	payload, _ = Build(Publication{Topic: "t", Payload: nil}, "c", received)
	if _, err := message.Parse(payload); err != nil {
		t.Fatalf("3.1.1 message: %v", err)
	}
	props = packet.Properties{User: []packet.UserProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}}, ContentType: "text/é"}
	props.Mark(packet.PropContentType)
	payload, _ = Build(Publication{Topic: "t", Props: &props}, "c", received)
	m = amqp.Message{}
	if err := m.UnmarshalBinary(payload); err != nil {
		t.Fatal(err)
	}
	if m.ApplicationProperties["k"] != "1" || m.Annotations[ContentTypeAnnotation] != "text/é" || m.Properties.ContentType != nil {
		t.Errorf("decoded %+v %v %v", m.Properties, m.ApplicationProperties, m.Annotations)
	}
	if l, _ := m.Annotations[UserPropertiesAnnotation].([]any); len(l) != 4 || l[3] != "2" {
		t.Errorf("user properties annotation %v", m.Annotations[UserPropertiesAnnotation])
	}
}

func BenchmarkBuild(b *testing.B) {
	var props packet.Properties
	props.User = []packet.UserProperty{{Key: "device", Value: "d1"}, {Key: "seq", Value: "1"}}
	payload := make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		Build(Publication{Topic: "telemetry", QoS: 1, Props: &props, Payload: payload}, "d1", time.Now())
	}
}
