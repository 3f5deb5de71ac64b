package mqtt

import (
	"math"
	"time"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/message"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// Message annotations the server adds (AMQP 1.0 §3.2.3; "x-opt-" keys may be ignored
// by a receiver that does not know them).
const (
	SourceAnnotation         = "x-opt-shadowgw-source" // as for AMQP devices
	QoSAnnotation            = "x-opt-mqtt-qos"        // ubyte 0, 1 or 2
	RetainAnnotation         = "x-opt-mqtt-retain"     // boolean
	PayloadFormatAnnotation  = "x-opt-mqtt-payload-format-indicator"
	ContentTypeAnnotation    = "x-opt-mqtt-content-type"    // a content type that is not ASCII
	UserPropertiesAnnotation = "x-opt-mqtt-user-properties" // every user property, when a key repeats
)

// Publication is what Build turns into an AMQP message: a PUBLISH or a Will.
type Publication struct {
	Topic   string
	QoS     byte
	Retain  bool
	Props   *packet.Properties // MQTT 5 properties; nil or empty for 3.1.1
	Payload []byte
}

// Build returns the AMQP 1.0 message (AMQP 1.0 part 3, §3.2) for a publication from
// source, received at received, and what the store needs to know of it:
//
//   - header (§3.2.1): durable; ttl = Message Expiry Interval in milliseconds;
//   - message-annotations (§3.2.3): SourceAnnotation, QoSAnnotation, RetainAnnotation,
//     PayloadFormatAnnotation when the publisher sent one;
//   - properties (§3.2.4): reply-to = Response Topic, correlation-id = Correlation Data
//     (binary), content-type = Content Type, absolute-expiry-time = received + Message
//     Expiry Interval, creation-time = received;
//   - application-properties (§3.2.5): the User Properties, string to string; for a key
//     that repeats, the first value, and UserPropertiesAnnotation lists all of them;
//   - one data section (§3.2.6): the payload, unchanged.
//
// It is the one place the MQTT server builds AMQP messages.
func Build(p Publication, source string, received time.Time) ([]byte, message.Info) {
	props := p.Props
	if props == nil {
		props = &packet.Properties{}
	}
	info := message.Info{Durable: true, Priority: 4, CreationTime: received.Truncate(time.Millisecond)}
	hasExpiry := props.Has(packet.PropMessageExpiry)
	if hasExpiry {
		info.TTL = time.Duration(props.MessageExpiry) * time.Second
		info.AbsoluteExpiryTime = received.Add(info.TTL).Truncate(time.Millisecond)
	}

	var w codec.Writer
	w.SetBytes(make([]byte, 0, 128+len(source)+len(p.Payload)+len(props.ContentType)+len(props.ResponseTopic)+len(props.CorrelationData)+32*len(props.User)))

	// header: durable, priority (default), ttl.
	w.Descriptor(message.SecHeader)
	m := w.BeginList()
	w.Bool(true)
	if hasExpiry {
		w.Null()
		w.Uint(uint32(min(uint64(props.MessageExpiry)*1000, math.MaxUint32)))
		w.EndList(m, 3)
	} else {
		w.EndList(m, 1)
	}

	// message-annotations: symbol keys.
	w.Descriptor(message.SecMessageAnnotations)
	m = w.BeginMap()
	pairs := 3
	w.Symbol(SourceAnnotation)
	w.String(source)
	w.Symbol(QoSAnnotation)
	w.Ubyte(p.QoS)
	w.Symbol(RetainAnnotation)
	w.Bool(p.Retain)
	if props.Has(packet.PropPayloadFormat) {
		w.Symbol(PayloadFormatAnnotation)
		w.Ubyte(props.PayloadFormat)
		pairs++
	}
	ctASCII := isASCII(props.ContentType)
	if props.Has(packet.PropContentType) && !ctASCII {
		w.Symbol(ContentTypeAnnotation)
		w.String(props.ContentType)
		pairs++
	}
	first := firstValues(props.User) // nil: no key repeats
	if first != nil {
		w.Symbol(UserPropertiesAnnotation)
		l := w.BeginList()
		for _, u := range props.User {
			w.String(u.Key)
			w.String(u.Value)
		}
		w.EndList(l, 2*len(props.User))
		pairs++
	}
	w.EndMap(m, pairs)

	// properties: message-id, user-id, to, subject, reply-to, correlation-id,
	// content-type, content-encoding, absolute-expiry-time, creation-time.
	w.Descriptor(message.SecProperties)
	m = w.BeginList()
	w.Null()
	w.Null()
	w.Null()
	w.Null()
	if props.Has(packet.PropResponseTopic) {
		w.String(props.ResponseTopic)
	} else {
		w.Null()
	}
	if props.Has(packet.PropCorrelationData) {
		w.Binary(props.CorrelationData)
	} else {
		w.Null()
	}
	if props.Has(packet.PropContentType) && ctASCII {
		w.Symbol(codec.Symbol(props.ContentType))
	} else {
		w.Null()
	}
	w.Null()
	if hasExpiry {
		w.Timestamp(codec.Timestamp(info.AbsoluteExpiryTime.UnixMilli()))
	} else {
		w.Null()
	}
	w.Timestamp(codec.Timestamp(info.CreationTime.UnixMilli()))
	w.EndList(m, 10)

	if len(props.User) > 0 {
		w.Descriptor(message.SecApplicationProperties)
		m = w.BeginMap()
		n := 0
		for i, u := range props.User {
			if first != nil && !first[i] {
				continue
			}
			w.String(u.Key)
			w.String(u.Value)
			n++
		}
		w.EndMap(m, n)
	}

	w.Descriptor(message.SecData)
	w.Binary(p.Payload)
	return w.Bytes(), info
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// firstValues returns, when a key repeats in u, which entries are the first of their
// key; nil when every key is unique.
func firstValues(u []packet.UserProperty) []bool {
	if len(u) < 2 {
		return nil
	}
	seen := make(map[string]struct{}, len(u))
	var first []bool
	for i := range u {
		if _, dup := seen[u[i].Key]; dup {
			if first == nil {
				first = make([]bool, len(u))
				for j := 0; j < i; j++ {
					first[j] = true
				}
			}
			continue
		}
		seen[u[i].Key] = struct{}{}
		if first != nil {
			first[i] = true
		}
	}
	return first
}
