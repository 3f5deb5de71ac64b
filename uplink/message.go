package uplink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/message"
)

// SourceAnnotation is the message annotation (AMQP 1.0 §3.2.3) the uplink adds to every
// forwarded message by default: the stored Source, i.e. who sent it to the gateway. A
// value the device set under this key is replaced. Config.SourceAnnotation names
// another key, or none.
const SourceAnnotation = message.SourceAnnotation

// NoSourceAnnotation, as Config.SourceAnnotation, forwards messages without one: for
// clouds whose address already names the device (see AddressTemplate), where the
// annotation would be decoded, stored and delivered with every message for nothing.
const NoSourceAnnotation = "none"

// CheckSourceAnnotation returns an error if key cannot be Config.SourceAnnotation:
// it must be NoSourceAnnotation or a symbol beginning with "x-opt-". AMQP 1.0 §3.2.10
// reserves annotation keys that do not begin with "x-", and a receiver that does not
// understand a key without the "x-opt-" prefix must detach the link: a cloud that
// does not know the gateway's annotation must be free to ignore it. A symbol is ASCII
// (§1.6.21); spaces and control characters are refused as well.
func CheckSourceAnnotation(key string) error {
	if key == "" || key == NoSourceAnnotation {
		return nil
	}
	if !strings.HasPrefix(key, "x-opt-") || len(key) == len("x-opt-") {
		return fmt.Errorf("%q: want a symbol beginning with x-opt- (AMQP 1.0 §3.2.10 reserves the others), or %s", key, NoSourceAnnotation)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%q: byte %d is not a printable ASCII character (a symbol is ASCII, §1.6.21)", key, i)
		}
	}
	return nil
}

// setSource puts source under key in msg's message-annotations, replacing what the
// device set under key or under SourceAnnotation (a device's own claim under the
// gateway's key is never passed on as the gateway's); key "" adds nothing. spare,
// empty or nil, becomes the annotations of a message that has none.
func setSource(msg *amqp.Message, key, source string, spare amqp.Annotations) {
	if msg.Annotations != nil {
		delete(msg.Annotations, amqp.Symbol(SourceAnnotation))
		delete(msg.Annotations, SourceAnnotation)
	}
	if key == "" {
		return
	}
	if msg.Annotations == nil {
		msg.Annotations = spare // empty, or nil: a new map
		if msg.Annotations == nil {
			msg.Annotations = make(amqp.Annotations, 1)
		}
	}
	delete(msg.Annotations, amqp.Symbol(key))
	msg.Annotations[key] = source // a string key is encoded as a symbol
}

// outgoing is a stored message made ready for the cloud.
type outgoing struct {
	msg    *amqp.Message
	target string // cloud address
	size   int    // the encoded size, estimated (see sizeEstimate)
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
//     whose ttl ran out is not sent; a header that holds only the defaults is left
//     out, which means the same;
//   - delivery-annotations (§3.2.2) are dropped: they were for the gateway, the hop that
//     received them, not for the next one;
//   - message-annotations (§3.2.3) keep the device's entries and get the source under
//     key, Config.SourceAnnotation resolved ("" for none; see setSource);
//   - properties (§3.2.4): a message without message-id gets idPrefix + its store
//     sequence number, the same at every retry, so that the cloud's consumers can
//     drop the duplicates at-least-once delivery makes.
//
// An error means the message can never be sent as stored; the caller dead-letters it
// with the error's text as the reason. spare, empty or nil, becomes the message's
// annotations if it has none: the caller may reuse it once the message is encoded.
func prepare(m *storedMessage, target, idPrefix, key string, now time.Time, spare amqp.Annotations) (out outgoing, err error) {
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
	if h := msg.Header; h != nil && *h == (amqp.MessageHeader{Priority: 4}) {
		// A header of defaults says what no header says (§3.2.1); go-amqp would
		// encode it in full (Proton's empty header becomes a list32 with durable
		// false), for the cloud to decode with every message.
		msg.Header = nil
	}
	msg.DeliveryAnnotations = nil
	setSource(msg, key, m.Source, spare)
	if msg.Properties == nil {
		msg.Properties = &amqp.MessageProperties{}
	}
	if msg.Properties.MessageID == nil {
		msg.Properties.MessageID = idPrefix + strconv.FormatUint(m.Seq, 10)
	}

	// The message is not encoded here: Send encodes it, once. A message go-amqp cannot
	// encode, or one larger than the cloud's max-message-size, fails that Send before
	// anything is written (see unsendable).
	return outgoing{msg: msg, target: target, size: sizeEstimate(m, idPrefix, key, msg.Properties.MessageID)}, nil
}

// sizeEstimate returns about how many bytes the prepared message of m encodes to,
// without encoding it: the stored size, plus the source annotation under key (if
// any) and a derived message-id. The stored sections are re-encoded by go-amqp, whose choice of
// encodings may differ from the device's by a few bytes, and dropped
// delivery-annotations are not subtracted: the figure is for the rate limit and the
// logs; go-amqp checks the exact size against the cloud's max-message-size.
func sizeEstimate(m *storedMessage, idPrefix, key string, id any) int {
	// An annotation entry: symbol key (2 + len), string value (2 or 5 + len); a new
	// message-annotations section or properties list adds up to 12 bytes of
	// descriptors and headers.
	n := len(m.Payload)
	if key != "" {
		n += 2 + len(key) + 5 + len(m.Source) + 12
	}
	if s, ok := id.(string); ok && len(s) > len(idPrefix) && s[:len(idPrefix)] == idPrefix {
		n += 5 + len(s) + 12
	}
	return n
}

// unsendable reports whether err, returned by a Send of msg that wrote nothing, is
// about the message itself, not the link: it exceeds the cloud's max-message-size
// (§2.7.3; go-amqp checks the encoded size before writing), or go-amqp cannot encode
// it. Such a message is dead-lettered; sending it again would fail the same way.
// Errors of the link, session or connection are go-amqp's typed errors, and a Send
// that ran out of time waiting for link credit returns amqp:transfer-limit-exceeded.
// Any other error is the encoder's only if msg fails to encode again here (a rare
// path: go-amqp's other plain errors, such as a link the broker made settled, are
// the link's).
func unsendable(err error, msg *amqp.Message) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Condition == amqp.ErrCondMessageSizeExceeded
	}
	var le *amqp.LinkError
	var se *amqp.SessionError
	var ce *amqp.ConnError
	if errors.As(err, &le) || errors.As(err, &se) || errors.As(err, &ce) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	_, encErr := msg.MarshalBinary()
	return encErr != nil
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
// be sent next (see modified). It starts from the payload as stored, so that the
// ttl is still counted from the time the message was received.
func (u *Uplink) rewriteModified(seq uint64, payload []byte, state *amqp.StateModified) error {
	b, err := modified(payload, state)
	if err != nil {
		return err
	}
	return u.src.Rewrite(seq, b)
}

// modified returns payload changed as a modified outcome asks (AMQP 1.0 §3.4.5):
// with delivery-failed, the header's delivery-count one higher (a message without
// header gets one of the defaults, §3.2.1: priority 4); message-annotations
// combined with the message's, the outcome's value replacing an existing one under
// the same key.
func modified(payload []byte, state *amqp.StateModified) ([]byte, error) {
	msg, err := decode(payload)
	if err != nil {
		return nil, err
	}
	if state.DeliveryFailed {
		if msg.Header == nil {
			msg.Header = &amqp.MessageHeader{Priority: 4}
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
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

// isSizeExceeded reports whether err is go-amqp's refusal of a message larger than
// the link's max-message-size.
func isSizeExceeded(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Condition == amqp.ErrCondMessageSizeExceeded
}
