package mqtt

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/message"
	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// amqpCommand is what a PUBLISH carries of a command queued as an AMQP 1.0 message
// (AMQP 1.0 part 3, §3.2): the reverse of Build.
type amqpCommand struct {
	subject     string // properties subject: the last topic level
	replyTo     string // properties reply-to: Response Topic
	correlation []byte // properties correlation-id: Correlation Data
	hasCorr     bool
	contentType string // properties content-type: Content Type
	user        []packet.UserProperty
	body        []byte
	text        bool // the body was an amqp-value string: Payload Format Indicator 1
}

// errNoMQTTForm is the error of a command that a PUBLISH cannot carry.
type errNoMQTTForm struct{ what string }

func (e errNoMQTTForm) Error() string { return "the command has no MQTT form: " + e.what }

// parseCommand reads a stored command. Header, delivery and message annotations and
// footer are left out (the cloud's routing data, not the device's); the body must
// be data sections (concatenated) or an amqp-value string, symbol or binary.
func parseCommand(p []byte) (amqpCommand, error) {
	var c amqpCommand
	r := codec.NewReader(p)
	data := 0
	for r.Len() > 0 {
		code, err := r.Descriptor("section")
		if err != nil {
			return c, err
		}
		switch code {
		case message.SecProperties:
			f := r.Composite("properties")
			f.Skip() // message-id
			f.Skip() // user-id
			f.Skip() // to
			c.subject, _ = f.String("subject")
			c.replyTo, _ = f.String("reply-to")
			if v := f.Value("correlation-id"); v != nil {
				c.correlation, c.hasCorr = idBytes(v), true
			}
			ct, _ := f.Symbol("content-type")
			c.contentType = string(ct)
			if err := f.Done(); err != nil {
				return c, err
			}
		case message.SecApplicationProperties:
			v, err := r.Value()
			if err != nil {
				return c, err
			}
			m, _ := v.(codec.Map)
			for _, kv := range m {
				k, ok := kv.Key.(string)
				if !ok {
					continue
				}
				if s, ok := valueText(kv.Value); ok {
					c.user = append(c.user, packet.UserProperty{Key: k, Value: s})
				}
			}
		case message.SecData:
			b, _, err := r.Binary("data")
			if err != nil {
				return c, err
			}
			if data == 0 {
				c.body = b
			} else {
				c.body = append(c.body[:len(c.body):len(c.body)], b...)
			}
			data++
		case message.SecAMQPValue:
			v, err := r.Value()
			if err != nil {
				return c, err
			}
			switch v := v.(type) {
			case string:
				c.body, c.text = []byte(v), true
			case codec.Symbol:
				c.body, c.text = []byte(v), true
			case []byte:
				c.body = v
			case nil:
			default:
				return c, errNoMQTTForm{fmt.Sprintf("an amqp-value body of type %T", v)}
			}
		case message.SecAMQPSequence:
			return c, errNoMQTTForm{"an amqp-sequence body"}
		default:
			if err := r.Skip(); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// idBytes returns a message-id or correlation-id (§3.2.4: ulong, uuid, binary or
// string) as Correlation Data: a binary as it is, others as their text.
func idBytes(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	s, _ := valueText(v)
	return []byte(s)
}

// valueText returns an application property's value as a User Property's string:
// strings and symbols as they are, numbers and booleans in Go's decimal form, a
// timestamp as RFC 3339 with milliseconds, a uuid in its 8-4-4-4-12 form, a UTF-8
// binary as text; false for the rest (left out).
func valueText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case codec.Symbol:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	case uint8, uint16, uint32, uint64, int8, int16, int32, int64:
		return fmt.Sprint(v), true
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case codec.Timestamp:
		return time.UnixMilli(int64(v)).UTC().Format("2006-01-02T15:04:05.000Z07:00"), true
	case codec.Char:
		return string(rune(v)), true
	case codec.UUID:
		h := hex.EncodeToString(v[:])
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
	case []byte:
		if utf8.Valid(v) {
			return string(v), true
		}
	}
	return "", false
}

// topicLevel reports whether s may be put into a topic name as it is: an MQTT
// string without the wildcards (§4.7 and §1.5.4 in 5.0, §4.7 and §1.5.3 in 3.1.1).
func topicLevel(s string) bool {
	return packet.ValidString(s) && !strings.ContainsAny(s, "+#")
}

// commandPublish returns the PUBLISH that carries cmd on topic to a client of
// version, with QoS qos, at now (for the remaining time to live); an error when the
// command cannot be carried.
//
// MQTT 5 properties (5.0 §3.3.2.3): Message Expiry Interval = the seconds left
// before the queue drops the command (rounded up, §3.3.2.3.3); Correlation Data =
// correlation-id; Response Topic = reply-to (when it is a valid topic name); Content
// Type = content-type; User Properties = application-properties; Payload Format
// Indicator 1 for a string body. A value that is no MQTT string (not UTF-8, U+0000,
// over 65,535 bytes) is left out. 3.1.1 clients get the topic and the payload only.
func commandPublish(cmd *Command, c *amqpCommand, topic string, qos, version byte, now time.Time) *packet.Publish {
	p := &packet.Publish{QoS: qos, Topic: topic, Payload: c.body}
	if version != packet.V5 {
		return p
	}
	pr := &p.Props
	if !cmd.Expires.IsZero() {
		left := cmd.Expires.Sub(now)
		secs := (left + time.Second - 1) / time.Second
		pr.MessageExpiry = uint32(min(max(secs, 1), 0xFFFFFFFF))
		pr.Mark(packet.PropMessageExpiry)
	}
	if c.hasCorr && len(c.correlation) <= 65535 { // §1.5.6 Binary Data
		pr.CorrelationData = c.correlation
		pr.Mark(packet.PropCorrelationData)
	}
	if c.replyTo != "" && topicLevel(c.replyTo) {
		pr.ResponseTopic = c.replyTo
		pr.Mark(packet.PropResponseTopic)
	}
	if c.contentType != "" && packet.ValidString(c.contentType) {
		pr.ContentType = c.contentType
		pr.Mark(packet.PropContentType)
	}
	if c.text {
		pr.PayloadFormat = 1
		pr.Mark(packet.PropPayloadFormat)
	}
	for _, u := range c.user {
		if packet.ValidString(u.Key) && packet.ValidString(u.Value) {
			pr.User = append(pr.User, u)
		}
	}
	return p
}
