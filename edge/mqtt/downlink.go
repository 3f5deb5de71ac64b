package mqtt

import "time"

// Commands is the device command queues (cloud → device) the server delivers to
// subscribed clients: one FIFO per device id, the same queues AMQP devices read.
// cmd/shadowgw adapts the store to it. Read is called on a connection's owner
// goroutine and should be quick (a read transaction); the other methods must not
// block.
type Commands interface {
	// Watch calls wake, from any goroutine and without blocking for long, whenever
	// something new may be readable for device, until stop is called; stop waits
	// until wake is no longer called.
	Watch(device string, wake func()) (stop func())
	// Read returns up to max queued, unexpired commands of device with a seq above
	// after, in order.
	Read(device string, after uint64, max int) ([]Command, error)
	// Delivered removes a command its device acknowledged and calls done (from any
	// goroutine, never blocking) once that is durable.
	Delivered(device string, seq uint64, done func(error))
	// DeadLetter moves a command its device refused to the dead letters with reason,
	// and calls done as Delivered does.
	DeadLetter(device string, seq uint64, reason string, done func(error))
}

// Command is one queued command.
type Command struct {
	Seq     uint64    // the queue's sequence number
	Expires time.Time // when the queue drops it; zero: never
	Payload []byte    // the AMQP 1.0 message as the cloud sent it
}

// CommandTopic is the first topic level of the commands the server publishes: a
// client subscribes to command/<device-id>/# or, as with Eclipse Hono's MQTT
// adapter, to command///req/# for its own (see subscribe.go).
const CommandTopic = "command"

// Client is what the server knows of a connected client.
type Client struct {
	ID      string // client identifier
	User    string // user name, "" for anonymous
	Version byte   // packet.V311 or packet.V5
}
