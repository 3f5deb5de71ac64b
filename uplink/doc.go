// Package uplink forwards the gateway's stored messages to the cloud broker over AMQP
// 1.0 (github.com/Azure/go-amqp), TLS and SASL PLAIN.
//
// # Delivery
//
// An [Uplink] reads its [Source] (the store) in sequence order and sends each message
// to AddressPrefix + its stored address, on one sender link per target address, kept
// open and reused. Up to Config.InFlight transfers may await their outcome at once; the
// transfers leave in store order, so the order within an address is kept (a message
// sent again after a release is the exception, see below). A message leaves the store
// only after the cloud settled it with an outcome (AMQP 1.0 §3.4):
//
//   - accepted (§3.4.2): deleted from the store;
//   - rejected (§3.4.3): moved to the store's dead letters with the cloud's error
//     condition and description as the reason;
//   - released (§3.4.4) or modified (§3.4.5): kept; after the outcomes in flight have
//     arrived and Config.RetryDelay has passed, the uplink reads the store again from the
//     start and sends it again, after messages that were already accepted.
//
// A lost connection or refused link leaves every message whose outcome had not arrived
// in the store; it is sent again on the next connection. Delivery is therefore at least
// once: a message the cloud accepted just before the connection broke is sent twice.
//
// # Messages
//
// The stored payload is the message as the device sent it. It is decoded with go-amqp
// and sent unchanged except for the parts an intermediary owns: the header's ttl is
// reduced by the time spent in the store (§3.2.1), delivery-annotations are dropped
// (§3.2.2), and the message annotation [SourceAnnotation] is set to the stored source
// (§3.2.3). go-amqp re-encodes what it decoded: the values are the same, the bytes may
// differ (map order, integer widths, symbols in values become strings). A payload
// go-amqp cannot decode or encode, or without body, or whose ttl ran out, or that is
// larger than the link's max-message-size, is dead-lettered with the reason.
//
// # Failures
//
// Each failed connection attempt (TCP, TLS, SASL, open, begin, attach) and each lost
// connection is logged once at warn with key err, and retried after an exponential
// backoff with jitter between Config.BackoffMin and Config.BackoffMax. The password
// and CA files are read at every attempt, so fixing them takes effect without a
// restart. A connection on which a message waits longer than Config.StallTimeout for
// link credit or for its outcome counts as lost. Connecting is logged at info only once
// the connection proved to work; per-message lines are at debug, dead letters at warn
// at most every 10 s. Status reports the state for status pages and metrics.
package uplink
