// Package mqtt is the device-facing MQTT server: devices speaking MQTT 3.1.1 or 5.0 over
// plain TCP publish messages, which the server turns into AMQP 1.0 messages (see
// [Build]) and hands to a [Sink], the durable store. A QoS 1 PUBACK and a QoS 2 PUBREC
// are written only once the Sink says the message is on disk; QoS 0 messages are stored
// without an acknowledgement.
//
// The wire format is package [github.com/shadowgw/shadowgw/edge/mqtt/packet]; this
// package holds the session state machine and the gateway's policy: authentication
// against the same device credentials as the AMQP server, per-device allowed topics,
// limits, keep-alive, will messages, and backpressure when the store is full (the
// server stops reading from a device until there is room).
//
// Each connection has two goroutines: a reader that reads and decodes packets, and an
// owner that holds all session state and does all writing. Sink completions reach the
// owner through a queue that never blocks the Sink. Subscriptions to a device's command
// topic get its queued cloud → device commands from [Commands] (subscribe.go,
// deliver.go; command.go turns the stored AMQP message into a PUBLISH); without
// Commands, every subscription is refused. Sessions (subscriptions, unacknowledged
// commands, QoS 2 identifiers) are kept in memory between connections.
package mqtt
