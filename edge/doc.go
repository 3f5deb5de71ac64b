// Package edge is the device-facing AMQP 1.0 server: devices on the local network connect
// over plain TCP (with the SASL layer, ANONYMOUS or PLAIN, or without it), attach sending
// links, and transfer messages, which the server hands to a [Sink] — the durable store —
// and acknowledges only once the Sink says they are on disk. The messages of a direct
// route go past the Sink to a [Direct] target instead: the device's credit follows the
// target's readiness and its delivery is settled with the far end's outcome.
//
// The layers below it are [github.com/shadowgw/shadowgw/edge/codec] (the type system),
// [github.com/shadowgw/shadowgw/edge/frame] (frames and performatives) and
// [github.com/shadowgw/shadowgw/edge/message] (the message model). codec and message are
// the gateway's AMQP wire layer: uplink and hw use them too, and they know nothing of the
// store or of connections. This package holds the
// connection, session and link state machines (AMQP 1.0 part 2, "Transport") and the
// gateway's policy: authentication, limits and link credit as backpressure.
//
// Each connection has two goroutines: a reader that decodes frames, and an owner that
// holds all connection, session and link state and does all writing. Sink completions
// reach the owner through a queue that never blocks the Sink.
package edge
