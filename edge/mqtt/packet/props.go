package packet

import (
	"encoding/binary"
	"fmt"
)

// Property identifiers (5.0 §2.2.2.2, table 2-4).
const (
	PropPayloadFormat       = 0x01
	PropMessageExpiry       = 0x02
	PropContentType         = 0x03
	PropResponseTopic       = 0x08
	PropCorrelationData     = 0x09
	PropSubscriptionID      = 0x0B
	PropSessionExpiry       = 0x11
	PropAssignedClientID    = 0x12
	PropServerKeepAlive     = 0x13
	PropAuthMethod          = 0x15
	PropAuthData            = 0x16
	PropRequestProblemInfo  = 0x17
	PropWillDelay           = 0x18
	PropRequestResponseInfo = 0x19
	PropResponseInfo        = 0x1A
	PropServerReference     = 0x1C
	PropReasonString        = 0x1F
	PropReceiveMaximum      = 0x21
	PropTopicAliasMaximum   = 0x22
	PropTopicAlias          = 0x23
	PropMaximumQoS          = 0x24
	PropRetainAvailable     = 0x25
	PropUser                = 0x26
	PropMaximumPacketSize   = 0x27
	PropWildcardSubAvail    = 0x28
	PropSubIDAvail          = 0x29
	PropSharedSubAvail      = 0x2A
)

// UserProperty is one User Property (§3.3.2.3.7): a string pair. Keys may repeat.
type UserProperty struct{ Key, Value string }

// Properties are the MQTT 5 properties of a packet or a Will. Set records which
// single-valued properties are present (bit i for identifier i); the repeated ones
// (User, SubscriptionIDs) are present when non-empty.
type Properties struct {
	Set uint64

	PayloadFormat       byte
	MessageExpiry       uint32
	ContentType         string
	ResponseTopic       string
	CorrelationData     []byte
	SubscriptionIDs     []uint32
	SessionExpiry       uint32
	AssignedClientID    string
	ServerKeepAlive     uint16
	AuthMethod          string
	AuthData            []byte
	RequestProblemInfo  byte
	WillDelay           uint32
	RequestResponseInfo byte
	ResponseInfo        string
	ServerReference     string
	ReasonString        string
	ReceiveMaximum      uint16
	TopicAliasMaximum   uint16
	TopicAlias          uint16
	MaximumQoS          byte
	RetainAvailable     byte
	MaximumPacketSize   uint32
	WildcardSubAvail    byte
	SubIDAvail          byte
	SharedSubAvail      byte
	User                []UserProperty
}

// Has reports whether the property with identifier id is present.
func (p *Properties) Has(id byte) bool {
	switch id {
	case PropUser:
		return len(p.User) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return id < 64 && p.Set&(1<<id) != 0
}

// Mark records that the single-valued property id is present.
func (p *Properties) Mark(id byte) { p.Set |= 1 << id }

// propKind is how a property's value is encoded (5.0 §2.2.2.2).
type propKind uint8

const (
	kByte propKind = iota + 1
	kUint16
	kUint32
	kVarint
	kString
	kBinary
	kPair
)

var propKinds = [64]propKind{
	PropPayloadFormat: kByte, PropMessageExpiry: kUint32, PropContentType: kString,
	PropResponseTopic: kString, PropCorrelationData: kBinary, PropSubscriptionID: kVarint,
	PropSessionExpiry: kUint32, PropAssignedClientID: kString, PropServerKeepAlive: kUint16,
	PropAuthMethod: kString, PropAuthData: kBinary, PropRequestProblemInfo: kByte,
	PropWillDelay: kUint32, PropRequestResponseInfo: kByte, PropResponseInfo: kString,
	PropServerReference: kString, PropReasonString: kString, PropReceiveMaximum: kUint16,
	PropTopicAliasMaximum: kUint16, PropTopicAlias: kUint16, PropMaximumQoS: kByte,
	PropRetainAvailable: kByte, PropUser: kPair, PropMaximumPacketSize: kUint32,
	PropWildcardSubAvail: kByte, PropSubIDAvail: kByte, PropSharedSubAvail: kByte,
}

// Which properties each packet may carry (5.0 §2.2.2.2, table 2-4), as bit sets.
func bits(ids ...byte) uint64 {
	var s uint64
	for _, id := range ids {
		s |= 1 << id
	}
	return s
}

// propContext names where a property list appears.
type propContext uint8

const (
	ctxConnect propContext = iota
	ctxWill
	ctxConnack
	ctxPublish
	ctxAck
	ctxSubscribe
	ctxSuback
	ctxUnsubscribe
	ctxUnsuback
	ctxDisconnect
	ctxAuth
)

var allowed = [...]uint64{
	ctxConnect: bits(PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
		PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUser, PropMaximumPacketSize),
	ctxWill: bits(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropWillDelay, PropUser),
	ctxConnack: bits(PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
		PropAuthData, PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
		PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUser, PropMaximumPacketSize,
		PropWildcardSubAvail, PropSubIDAvail, PropSharedSubAvail),
	ctxPublish: bits(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUser),
	ctxAck:         bits(PropReasonString, PropUser),
	ctxSubscribe:   bits(PropSubscriptionID, PropUser),
	ctxSuback:      bits(PropReasonString, PropUser),
	ctxUnsubscribe: bits(PropUser),
	ctxUnsuback:    bits(PropReasonString, PropUser),
	ctxDisconnect:  bits(PropSessionExpiry, PropServerReference, PropReasonString, PropUser),
	ctxAuth:        bits(PropAuthMethod, PropAuthData, PropReasonString, PropUser),
}

// readProps reads a property list (5.0 §2.2.2): its Property Length, then properties
// that the context allows, each single-valued one at most once (a second one is a
// Protocol Error), with values in range.
func (r *reader) props(ctx propContext, p *Properties) {
	n := r.varint("property length")
	if r.err != nil {
		return
	}
	if uint64(n) > uint64(r.left()) {
		r.fail(malformed("property length %d exceeds the %d bytes left", n, r.left()))
		return
	}
	end := r.off + int(n)
	sub := reader{b: r.b[:end], off: r.off}
	for sub.err == nil && sub.off < end {
		at := sub.off
		idv := sub.varint("property identifier")
		if sub.err != nil {
			break
		}
		if idv >= 64 || propKinds[idv] == 0 {
			sub.fail(malformed("unknown property identifier 0x%02x at offset %d", idv, at))
			break
		}
		id := byte(idv)
		if allowed[ctx]&(1<<id) == 0 {
			sub.fail(malformed("property 0x%02x at offset %d is not allowed in this packet", id, at))
			break
		}
		if id != PropUser && id != PropSubscriptionID {
			if p.Set&(1<<id) != 0 {
				sub.fail(protocolErr("property 0x%02x included twice", id))
				break
			}
			p.Set |= 1 << id
		}
		sub.prop(id, p)
	}
	r.off = sub.off
	r.fail(sub.err)
}

func (r *reader) prop(id byte, p *Properties) {
	name := fmt.Sprintf("property 0x%02x", id)
	switch id {
	case PropSubscriptionID:
		v := r.varint(name)
		if r.err == nil && v == 0 {
			r.fail(protocolErr("subscription identifier 0"))
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		return
	case PropUser:
		k := r.string(name + " key")
		v := r.string(name + " value")
		p.User = append(p.User, UserProperty{k, v})
		return
	}
	switch f := p.field(id).(type) {
	case *byte:
		// Every byte property is a boolean, Maximum QoS included (§3.2.2.3.4).
		if *f = r.byte(name); *f > 1 {
			r.fail(protocolErr("%s: value %d, want 0 or 1", name, *f))
		}
	case *uint16:
		*f = r.uint16(name)
	case *uint32:
		*f = r.uint32(name)
	case *string:
		*f = r.string(name)
	case *[]byte:
		*f = r.binary(name)
	}
	if r.err != nil {
		return
	}
	switch {
	case id == PropResponseTopic && !ValidTopicName(p.ResponseTopic):
		r.fail(protocolErr("response topic %q is not a valid topic name", p.ResponseTopic))
	case id == PropReceiveMaximum && p.ReceiveMaximum == 0:
		r.fail(protocolErr("receive maximum 0"))
	case id == PropMaximumPacketSize && p.MaximumPacketSize == 0:
		r.fail(protocolErr("maximum packet size 0"))
	}
}

// appendProps appends the property list of p: its Property Length, then the present
// properties in identifier order, user properties last.
func appendProps(b []byte, p *Properties) []byte {
	var body []byte
	if p != nil {
		body = p.encode(nil)
	}
	b = appendVarint(b, uint32(len(body)))
	return append(b, body...)
}

func (p *Properties) encode(b []byte) []byte {
	for id := byte(1); id < 64; id++ {
		if id == PropUser || id == PropSubscriptionID || p.Set&(1<<id) == 0 {
			continue
		}
		b = append(b, id)
		switch f := p.field(id).(type) {
		case *byte:
			b = append(b, *f)
		case *uint16:
			b = binary.BigEndian.AppendUint16(b, *f)
		case *uint32:
			b = binary.BigEndian.AppendUint32(b, *f)
		case *string:
			b = appendString(b, *f)
		case *[]byte:
			b = appendBinary(b, *f)
		}
	}
	for _, v := range p.SubscriptionIDs {
		b = appendVarint(append(b, PropSubscriptionID), v)
	}
	for _, u := range p.User {
		b = append(b, PropUser)
		b = appendString(appendString(b, u.Key), u.Value)
	}
	return b
}

// field returns a pointer to the field of the single-valued property id, whose type
// is how the value is encoded: *byte, *uint16, *uint32, *string (UTF-8 string) or
// *[]byte (binary data); nil for the repeated ones.
func (p *Properties) field(id byte) any {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropWillDelay:
		return &p.WillDelay
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	case PropWildcardSubAvail:
		return &p.WildcardSubAvail
	case PropSubIDAvail:
		return &p.SubIDAvail
	case PropSharedSubAvail:
		return &p.SharedSubAvail
	}
	return nil
}
