package hw

import (
	"fmt"
	"strconv"

	"github.com/shadowgw/shadowgw/edge/message"
	"github.com/shadowgw/shadowgw/store"
)

// SourceAnnotation is the message annotation naming where a message came from; the
// uplink sets the same key from store.Message.Source, replacing this one with the same
// value.
const SourceAnnotation = message.SourceAnnotation

// ContentType is the content-type of every reading's message.
const ContentType = "application/json"

// Encode returns the AMQP 1.0 encoding of a reading's message: header (durable),
// message-annotations (SourceAnnotation = source), properties (message-id, subject,
// content-type, creation-time) and one data section holding body.
func Encode(source, subject string, r Reading, body []byte) []byte {
	m := message.Made{
		Durable:      true,
		Source:       source,
		MessageID:    source + ":" + strconv.FormatInt(r.Time.UnixNano(), 10),
		Subject:      subject,
		ContentType:  ContentType,
		CreationTime: r.Time,
		Body:         body,
	}
	return m.Encode()
}

// Message returns the store message for a reading of this input: its body (see
// Reading.Body) in the encoding of Encode, for Spec.Target, from Spec.Source. It does
// not expire by itself (no ttl): the route's default time to live applies.
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
