package hw

import (
	"fmt"
	"strconv"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/store"
)

// SourceAnnotation is the message annotation naming where a message came from; the
// uplink sets the same key (package uplink's SourceAnnotation) from
// store.Message.Source, replacing this one with the same value.
const SourceAnnotation = "x-opt-shadowgw-source"

// ContentType is the content-type of every reading's message.
const ContentType = "application/json"

// Section descriptors, AMQP 1.0 part 3, §3.2.
const (
	descHeader             = 0x70 // §3.2.1 header
	descMessageAnnotations = 0x72 // §3.2.3 message-annotations
	descProperties         = 0x73 // §3.2.4 properties
	descData               = 0x75 // §3.2.6 data
)

// Encode returns the AMQP 1.0 encoding of a reading's message: header (durable),
// message-annotations (SourceAnnotation = source), properties (message-id, subject,
// content-type, creation-time) and one data section holding body.
func Encode(source, subject string, r Reading, body []byte) []byte {
	var w codec.Writer
	w.SetBytes(make([]byte, 0, 160+len(source)+2*len(subject)+len(body)))

	// header: durable = true; the other fields keep their defaults.
	w.Descriptor(descHeader)
	m := w.BeginList()
	w.Bool(true)
	w.EndList(m, 1)

	// message-annotations: a map with symbol keys.
	w.Descriptor(descMessageAnnotations)
	m = w.BeginMap()
	w.Symbol(SourceAnnotation)
	w.String(source)
	w.EndMap(m, 1)

	// properties: message-id, user-id, to, subject, reply-to, correlation-id,
	// content-type, content-encoding, absolute-expiry-time, creation-time.
	w.Descriptor(descProperties)
	m = w.BeginList()
	w.String(source + ":" + strconv.FormatInt(r.Time.UnixNano(), 10))
	w.Null()
	w.Null()
	w.String(subject)
	w.Null()
	w.Null()
	w.Symbol(ContentType)
	w.Null()
	w.Null()
	w.Timestamp(codec.Timestamp(r.Time.UnixMilli()))
	w.EndList(m, 10)

	w.Descriptor(descData)
	w.Binary(body)
	return w.Bytes()
}

// Message returns the store message for a reading of this input: its body (see
// Reading.Body) in the encoding of Encode, for Spec.Target, from Spec.Source.
func (in *Input) Message(r Reading) (*store.Message, error) {
	body, err := r.Body(in.spec.Name, string(in.spec.Kind))
	if err != nil {
		return nil, fmt.Errorf("hw: %s: %w", in.spec.Name, err)
	}
	return &store.Message{
		Address:  in.spec.Target,
		Source:   in.spec.Source(),
		Received: r.Time,
		Payload:  Encode(in.spec.Source(), in.spec.Name, r, body),
	}, nil
}
