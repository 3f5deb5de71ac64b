package store

import (
	"bytes"
	"time"
)

// Message is one stored message: an envelope (address, source, times) around a
// payload the store keeps as opaque bytes. The store knows nothing of the payload's
// encoding; the producers (the edge, the sensor inputs) and the uplink do.
type Message struct {
	Seq      uint64    // assigned by the store on Append, strictly increasing, never reused
	Address  string    // target address the device sent to
	Source   string    // who sent it (SASL user or container-id)
	Received time.Time // when the gateway received it; Append sets time.Now() if zero
	Payload  []byte    // the message's bytes (for AMQP: its sections exactly as received)
	Route    string    // the route the message is queued on; set by Read and ReadNext

	// Expires is when the message expires, as its producer worked it out from the
	// message (for AMQP, package message's ExpiresAt); the zero time means the message
	// sets none, and the route's DefaultTTL, counted from Received, applies. Append
	// keeps it; Read and ReadNext leave it zero.
	Expires time.Time
}

// DeadLetter is a message the cloud refused, kept with the reason.
type DeadLetter struct {
	Message
	Reason string    // why it was dead-lettered, e.g. the cloud's rejected error
	At     time.Time // when it was dead-lettered
}

// message copies a decoded record into a Message.
func (h messageHeader) message(seq uint64, str *interner) Message {
	return Message{
		Seq:      seq,
		Address:  str.get(h.address),
		Source:   str.get(h.source),
		Received: time.Unix(0, h.received),
		Payload:  bytes.Clone(h.payload),
	}
}

// interner reuses the previous strings when consecutive records repeat
// them, which is the common case for address and source.
type interner struct{ last [2]string }

func (in *interner) get(b []byte) string {
	for _, s := range in.last {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	in.last[1], in.last[0] = in.last[0], s
	return s
}
