package message

import (
	"time"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// SourceAnnotation is the message annotation (§3.2.3) naming who sent a message to the
// gateway: the SASL user or container-id of a device, or "input:NAME" of a sensor input.
// Messages the gateway makes carry it (see Made); the uplink sets it on every message
// it forwards, replacing a value a device set under the same key.
const SourceAnnotation = "x-opt-shadowgw-source"

// Made is a message the gateway makes itself (a sensor reading now; an MQTT publish or
// a presence event later), as opposed to one a device sent and the gateway keeps as it
// came. Encode turns it into the sections of §3.2.
type Made struct {
	Durable      bool      // header durable (§3.2.1)
	Source       string    // SourceAnnotation's value; "" leaves message-annotations out
	MessageID    string    // properties message-id (§3.2.4); "" for none
	Subject      string    // properties subject; "" for none
	ContentType  string    // properties content-type, a symbol; "" for none
	CreationTime time.Time // properties creation-time; zero for none
	Body         []byte    // the one data section (§3.2.6)
}

// Encode returns the AMQP 1.0 encoding of m: a header if m is durable,
// message-annotations if it has a source, properties if any of their fields is set, and
// one data section holding m.Body. It allocates the result once.
func (m *Made) Encode() []byte {
	var w codec.Writer
	w.SetBytes(make([]byte, 0, 160+len(m.Source)+len(m.MessageID)+len(m.Subject)+len(m.ContentType)+len(m.Body)))

	if m.Durable {
		// header: durable = true; the other fields keep their defaults.
		w.Descriptor(SecHeader)
		mark := w.BeginList()
		w.Bool(true)
		w.EndList(mark, 1)
	}
	if m.Source != "" {
		// message-annotations: a map with symbol keys.
		w.Descriptor(SecMessageAnnotations)
		mark := w.BeginMap()
		w.Symbol(SourceAnnotation)
		w.String(m.Source)
		w.EndMap(mark, 1)
	}
	if m.MessageID != "" || m.Subject != "" || m.ContentType != "" || !m.CreationTime.IsZero() {
		// properties: message-id, user-id, to, subject, reply-to, correlation-id,
		// content-type, content-encoding, absolute-expiry-time, creation-time.
		w.Descriptor(SecProperties)
		mark := w.BeginList()
		optString(&w, m.MessageID)
		w.Null()
		w.Null()
		optString(&w, m.Subject)
		w.Null()
		w.Null()
		if m.ContentType != "" {
			w.Symbol(codec.Symbol(m.ContentType))
		} else {
			w.Null()
		}
		w.Null()
		w.Null()
		if !m.CreationTime.IsZero() {
			w.Timestamp(codec.Timestamp(m.CreationTime.UnixMilli()))
		} else {
			w.Null()
		}
		w.EndList(mark, 10)
	}
	w.Descriptor(SecData)
	w.Binary(m.Body)
	return w.Bytes()
}

func optString(w *codec.Writer, s string) {
	if s == "" {
		w.Null()
		return
	}
	w.String(s)
}
