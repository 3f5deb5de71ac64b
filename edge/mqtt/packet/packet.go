package packet

import (
	"errors"
	"fmt"
)

// Type is a control packet type, the high nibble of the first byte (§2.1.2 in both
// versions).
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // MQTT 5 only
)

var typeNames = [...]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Protocol levels in CONNECT (§3.1.2.2).
const (
	V311 byte = 4
	V5   byte = 5
)

// MaxRemainingLength is the largest Remaining Length four bytes can encode (§2.2.3 in
// 3.1.1, §1.5.5 in 5.0): 268,435,455.
const MaxRemainingLength = 268435455

// ReasonCode is an MQTT 5 reason code (5.0 §2.4); 3.1.1 CONNACK return codes and SUBACK
// return codes share the type.
type ReasonCode byte

// Reason codes used by the server (5.0 §2.4, table 2-6).
const (
	Success                    ReasonCode = 0x00 // also Normal disconnection, Granted QoS 0
	GrantedQoS1                ReasonCode = 0x01
	GrantedQoS2                ReasonCode = 0x02
	DisconnectWithWill         ReasonCode = 0x04
	NoMatchingSubscribers      ReasonCode = 0x10
	NoSubscriptionExisted      ReasonCode = 0x11
	UnspecifiedError           ReasonCode = 0x80
	MalformedPacket            ReasonCode = 0x81
	ProtocolError              ReasonCode = 0x82
	ImplementationSpecific     ReasonCode = 0x83
	UnsupportedProtocolVersion ReasonCode = 0x84
	ClientIDNotValid           ReasonCode = 0x85
	BadUserNameOrPassword      ReasonCode = 0x86
	NotAuthorized              ReasonCode = 0x87
	ServerUnavailable          ReasonCode = 0x88
	ServerBusy                 ReasonCode = 0x89
	BadAuthenticationMethod    ReasonCode = 0x8C
	KeepAliveTimeout           ReasonCode = 0x8D
	SessionTakenOver           ReasonCode = 0x8E
	TopicFilterInvalid         ReasonCode = 0x8F
	TopicNameInvalid           ReasonCode = 0x90
	PacketIDNotFound           ReasonCode = 0x92
	ReceiveMaximumExceeded     ReasonCode = 0x93
	TopicAliasInvalid          ReasonCode = 0x94
	PacketTooLarge             ReasonCode = 0x95
	QuotaExceeded              ReasonCode = 0x97
	PayloadFormatInvalid       ReasonCode = 0x99
	SharedSubNotSupported      ReasonCode = 0x9E
	ServerShuttingDown         ReasonCode = 0x8B
)

// MQTT 3.1.1 CONNACK return codes (3.1.1 §3.2.2.3) and the SUBACK failure code
// (§3.9.3).
const (
	V3Accepted              ReasonCode = 0x00
	V3UnacceptableVersion   ReasonCode = 0x01
	V3IdentifierRejected    ReasonCode = 0x02
	V3ServerUnavailable     ReasonCode = 0x03
	V3BadUserNameOrPassword ReasonCode = 0x04
	V3NotAuthorized         ReasonCode = 0x05
	V3SubscriptionFailure   ReasonCode = 0x80
)

// Error is a decoding error, with the MQTT 5 reason code that describes it.
type Error struct {
	Code ReasonCode // MalformedPacket, ProtocolError or PacketTooLarge
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("mqtt: %s (reason 0x%02x)", e.Msg, byte(e.Code)) }

func malformed(format string, args ...any) error {
	return &Error{Code: MalformedPacket, Msg: fmt.Sprintf(format, args...)}
}

func protocolErr(format string, args ...any) error {
	return &Error{Code: ProtocolError, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the reason code of err if it is an *Error, else UnspecifiedError.
func CodeOf(err error) ReasonCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}

// Packet is a decoded control packet.
type Packet interface {
	// Type returns the packet's control packet type.
	Type() Type
	// Append appends the packet's encoding for protocol level version to b.
	Append(b []byte, version byte) []byte
}

// Will is the Will Message of a CONNECT (§3.1.2.5, §3.1.3.2–3).
type Will struct {
	QoS     byte
	Retain  bool
	Topic   string
	Payload []byte
	Props   Properties // MQTT 5 Will Properties
}

// Connect is a CONNECT packet (§3.1).
type Connect struct {
	ProtocolName string
	Version      byte // protocol level: V311 or V5
	CleanStart   bool // Clean Session in 3.1.1
	KeepAlive    uint16
	Props        Properties
	ClientID     string
	Will         *Will // nil without the Will Flag
	HasUser      bool
	User         string
	HasPassword  bool
	Password     []byte
}

// Connack is a CONNACK packet (§3.2).
type Connack struct {
	SessionPresent bool
	Code           ReasonCode // 3.1.1 return code or 5.0 reason code
	Props          Properties
}

// Publish is a PUBLISH packet (§3.3).
type Publish struct {
	Dup     bool
	QoS     byte
	Retain  bool
	Topic   string
	ID      uint16 // only for QoS 1 and 2
	Props   Properties
	Payload []byte
}

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP packet (§3.4–3.7).
type Ack struct {
	Kind  Type
	ID    uint16
	Code  ReasonCode // MQTT 5; Success in 3.1.1
	Props Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options (5.0 §3.8.3.1; in
// 3.1.1 only QoS).
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is a SUBSCRIBE packet (§3.8).
type Subscribe struct {
	ID    uint16
	Props Properties
	Subs  []Subscription
}

// Suback is a SUBACK packet (§3.9): one code per subscription.
type Suback struct {
	ID    uint16
	Props Properties
	Codes []ReasonCode
}

// Unsubscribe is an UNSUBSCRIBE packet (§3.10).
type Unsubscribe struct {
	ID      uint16
	Props   Properties
	Filters []string
}

// Unsuback is an UNSUBACK packet (§3.11); Codes are sent in MQTT 5 only.
type Unsuback struct {
	ID    uint16
	Props Properties
	Codes []ReasonCode
}

// Pingreq is a PINGREQ packet (§3.12).
type Pingreq struct{}

// Pingresp is a PINGRESP packet (§3.13).
type Pingresp struct{}

// Disconnect is a DISCONNECT packet (§3.14); Code and Props are MQTT 5 only.
type Disconnect struct {
	Code  ReasonCode
	Props Properties
}

// Auth is an MQTT 5 AUTH packet (5.0 §3.15).
type Auth struct {
	Code  ReasonCode
	Props Properties
}

func (*Connect) Type() Type     { return CONNECT }
func (*Connack) Type() Type     { return CONNACK }
func (*Publish) Type() Type     { return PUBLISH }
func (a *Ack) Type() Type       { return a.Kind }
func (*Subscribe) Type() Type   { return SUBSCRIBE }
func (*Suback) Type() Type      { return SUBACK }
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }
func (*Unsuback) Type() Type    { return UNSUBACK }
func (*Pingreq) Type() Type     { return PINGREQ }
func (*Pingresp) Type() Type    { return PINGRESP }
func (*Disconnect) Type() Type  { return DISCONNECT }
func (*Auth) Type() Type        { return AUTH }
