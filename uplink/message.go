package uplink

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/message"
)

// SourceAnnotation is the message annotation (AMQP 1.0 §3.2.3) the uplink adds to every
// forwarded message: the stored Source, i.e. who sent it to the gateway. A value the
// device set under this key is replaced.
const SourceAnnotation = message.SourceAnnotation

// outgoing is a stored message made ready for the cloud.
type outgoing struct {
	msg    *amqp.Message
	target string // cloud address
	size   int    // encoded size in bytes
}

// errNoAddress is why a stored message without address cannot be sent.
var errNoAddress = errors.New("message has no address")

// nullValueSection is an amqp-value body section holding null: descriptor 0x77, null.
var nullValueSection = []byte{0x00, 0x53, 0x77, 0x40}

// prepare decodes a stored message and makes the changes the uplink is allowed to make
// on the way: the bare message (properties, application-properties, body, AMQP 1.0
// §3.2) is forwarded as decoded; only the parts an intermediary owns change:
//
//   - header (§3.2.1): a ttl is reduced by the time spent in the store, and a message
//     whose ttl ran out is not sent;
//   - delivery-annotations (§3.2.2) are dropped: they were for the gateway, the hop that
//     received them, not for the next one;
//   - message-annotations (§3.2.3) keep the device's entries and get SourceAnnotation;
//   - properties (§3.2.4): a message without message-id gets idPrefix + its store
//     sequence number, the same at every retry, so that the cloud's consumers can
//     drop the duplicates at-least-once delivery makes.
//
// An error means the message can never be sent as stored; the caller dead-letters it
// with the error's text as the reason.
func prepare(m *storedMessage, target, idPrefix string, now time.Time) (out outgoing, err error) {
	if m.Address == "" {
		return outgoing{}, errNoAddress
	}
	msg, err := decode(m.Payload)
	if err != nil {
		return outgoing{}, err
	}
	if h := msg.Header; h != nil && h.TTL > 0 {
		stored := max(now.Sub(m.Received), 0)
		left := h.TTL - stored
		if left <= 0 {
			return outgoing{}, fmt.Errorf("ttl of %v expired after %v in the store", h.TTL, stored.Round(time.Millisecond))
		}
		// ttl is in whole milliseconds on the wire, and 0 would mean none.
		h.TTL = max(left.Truncate(time.Millisecond), time.Millisecond)
	}
	msg.DeliveryAnnotations = nil
	if msg.Annotations == nil {
		msg.Annotations = amqp.Annotations{}
	}
	delete(msg.Annotations, amqp.Symbol(SourceAnnotation))
	msg.Annotations[SourceAnnotation] = m.Source // a string key is encoded as a symbol
	if msg.Properties == nil {
		msg.Properties = &amqp.MessageProperties{}
	}
	if msg.Properties.MessageID == nil {
		msg.Properties.MessageID = idPrefix + strconv.FormatUint(m.Seq, 10)
	}

	// Encode once here so that a message go-amqp cannot encode is dead-lettered, not
	// mistaken for a broken link when Send fails; the size is checked against the link.
	enc, err := msg.MarshalBinary()
	if err != nil {
		return outgoing{}, fmt.Errorf("cannot encode message: %w", err)
	}
	return outgoing{msg: msg, target: target, size: len(enc)}, nil
}

// decode parses the stored sections with go-amqp. It never panics: a panic in the
// decoder is turned into an error, so one bad payload cannot stop the gateway.
func decode(payload []byte) (msg *amqp.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("cannot decode payload: decoder panic: %v", r)
		}
	}()
	msg = new(amqp.Message)
	if err := msg.UnmarshalBinary(payload); err != nil {
		return nil, fmt.Errorf("cannot decode payload: %w", err)
	}
	if msg.Data == nil && msg.Value == nil && msg.Sequence == nil {
		// go-amqp decodes an amqp-value of null to a nil Value, which it would not
		// encode at all; a message without body is invalid (§3.2).
		if !bytes.Contains(payload, nullValueSection) {
			return nil, errors.New("cannot decode payload: message has no body section")
		}
		msg.Value = amqp.Null{}
	}
	return msg, nil
}

// rewriteModified stores the message seq as the cloud's modified outcome asks it to
// be sent next (AMQP 1.0 §3.4.5): with delivery-failed, the header's delivery-count
// one higher; message-annotations combined with the message's, the outcome's value
// replacing an existing one under the same key. It starts from the payload as
// stored, so that the ttl is still counted from the time the message was received.
func (u *Uplink) rewriteModified(seq uint64, payload []byte, state *amqp.StateModified) error {
	msg, err := decode(payload)
	if err != nil {
		return err
	}
	if state.DeliveryFailed {
		if msg.Header == nil {
			msg.Header = &amqp.MessageHeader{}
		}
		msg.Header.DeliveryCount++
	}
	if len(state.MessageAnnotations) > 0 {
		if msg.Annotations == nil {
			msg.Annotations = amqp.Annotations{}
		}
		for k, v := range state.MessageAnnotations {
			msg.Annotations[k] = v
		}
	}
	b, err := msg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return u.src.Rewrite(seq, b)
}
