package mqtt

import (
	"errors"
	"time"

	"github.com/shadowgw/shadowgw/edge/message"
)

// ErrFull is the error a Sink's completion reports when it has no room; the server
// holds the message and tries again once Full says there is room.
var ErrFull = errors.New("store full")

// Message is a message for the store: an AMQP 1.0 message built from a PUBLISH or a
// Will (see Build).
type Message struct {
	Address  string       // the store address: AddressPrefix + topic
	Source   string       // the user name, or the client identifier of an anonymous client
	Received time.Time    // when the PUBLISH arrived
	Payload  []byte       // the AMQP 1.0 message sections
	Info     message.Info // what the store reads from Payload (ttl, expiry)
}

// Sink stores messages. Append must not block for long: it queues m and calls done
// exactly once, from any goroutine, when m is durable (err == nil) or could not be
// stored (an error wrapping ErrFull when there was no room). done never blocks. Full
// reports whether messages for address cannot be stored now; it is asked before each
// message, so it must be cheap.
type Sink interface {
	Append(m *Message, done func(error))
	Full(address string) bool
}
