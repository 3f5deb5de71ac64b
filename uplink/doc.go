// Package uplink forwards the gateway's stored messages to the cloud broker over AMQP
// 1.0 (github.com/Azure/go-amqp) over TLS, with SASL PLAIN, EXTERNAL (mutual TLS) or
// ANONYMOUS.
//
// The uplink dials TLS itself and runs go-amqp on a write-coalescing connection
// (coalesce.go): frames written while the previous write is under way go out together,
// many transfers per TLS record and per system call under load, a lone frame at once.
//
// # Delivery
//
// An [Uplink] reads its [Source] (the store) route by route in strict priority order
// (store.Store.ReadNextFunc: every queued message of a higher-priority route before any of
// a lower one, each route first in, first out), so that after an outage the alarms
// drain before a telemetry backlog, and alarms that arrive while a backlog drains
// overtake what has not been read yet. It sends each message to AddressPrefix + its
// stored address (or what AddressTemplate makes of it and the sender), on one
// session and sender link per target address, kept open and reused (RabbitMQ ends
// the whole session when it refuses a link, so a refusal concerns one address
// only). Each address is sent by a goroutine of its own, in the
// order read, so the order within an address is kept (a message sent again after a
// release is the exception, see below), and an address the cloud grants no link
// credit (§2.6.7) holds up only its own messages (see Held addresses). Up to
// Config.InFlight transfers may await their outcome at once, across all addresses. A
// message leaves the store only after the cloud settled it with an outcome (AMQP 1.0
// §3.4):
//
//   - accepted (§3.4.2): deleted from the store;
//   - rejected (§3.4.3): moved to the store's dead letters with the cloud's error
//     condition and description as the reason;
//   - released (§3.4.4): kept; its address is held (see below) for Config.RetryDelay,
//     growing while it keeps being released, then sent again;
//   - modified (§3.4.5): like released; with delivery-failed the copy sent next
//     carries a header delivery-count one higher per failure, and the outcome's
//     message-annotations are merged into the message's (the stored message is
//     rewritten, so a gateway restart keeps both); with undeliverable-here it
//     is not sent again on that connection: once nothing else is left, the uplink
//     reconnects (to the next endpoint, if there are several) and sends it there.
//
// Messages of an address after a released one may already be in flight and be
// accepted before it: the order within an address holds except across a retry. A
// message without message-id gets "shadowgw:<container-id>:<seq>", the same at every
// retry, so that consumers can drop the duplicates of at-least-once delivery.
//
// # Held addresses
//
// An address whose link or session the cloud refuses or ends (amqp:not-found,
// amqp:unauthorized-access, a link detached with an error, no credit for
// Config.StallTimeout) is held: its messages stay stored, in order, and are tried
// again on the address's own backoff, while the other addresses keep flowing.
// Status.Held lists them. The uplink reads the store in passes: whenever a hold is
// due, a new pass reads the store from the start. It passes over what is in flight
// or being deleted (without copying it out of the store), so it never sends again a
// message whose outcome, or whose delete, is pending, and it does not wait for the
// outcomes in flight on other addresses: a slow outcome holds up only its own
// address. It passes over the messages of held addresses as well; only a pass that
// tries a held address again reads some of them.
//
// An address that has waited half a second in all for link credit (or for its link
// to attach) while more of its messages are read, or that holds more than half the
// InFlight slots with its outcomes slow to come while other addresses' messages
// wait, is passed by: its later messages stay stored, in order, while the reading
// goes on for the other addresses. Once what it had queued (at most 64 messages) is
// sent, a new pass sends the rest. An address waiting for credit occupies one of
// the InFlight slots, so with InFlight 1 it still holds up the others until
// StallTimeout.
//
// # Shape
//
// A supervisor owns the connection: the endpoints, the backoff, the probes of the
// preferred endpoint, the credential files. It runs the users of the connection on
// each connection it opens and ends them together; forwarding is the first user,
// [Direct] (the direct routes, device to cloud) the second, and a receiver
// (cloud-to-device commands) can be another, each with its own sessions and links on
// the same connection. The forwarding state (lanes, holds,
// messages in flight, deletes pending) has one owner goroutine; each target
// address's lane sends and settles only and reports to the owner; a store worker
// deletes accepted messages in batches, and dead-letters and rewrites, without
// anyone waiting for the commit.
//
// # Endpoints, credentials, rate
//
// Config.URL may list several brokers. On a failure the uplink moves to the next one;
// after a whole round failed it backs off. While on a fallback it probes the preferred
// one every Config.PreferredProbeInterval with a TLS and SASL handshake and moves
// back, gracefully (outcomes in flight are awaited first), once it answers. The CA,
// certificate and key files are checked every Config.CredentialCheck; a change makes
// the same graceful reconnect, and the "connected" line names the client
// certificate's SHA-256 fingerprint. Config.RateLimit and RateLimitBytes cap the
// forwarding rate with a token bucket holding one second's worth.
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
// backoff with jitter between Config.BackoffMin and Config.BackoffMax. The password,
// CA, certificate and key files are read at every attempt, so fixing them takes effect without a
// restart. A connection on which a message waits longer than Config.StallTimeout for
// its outcome counts as lost; an address whose link gives no credit for that long is
// held (see Held addresses). Connecting is logged at info only once
// the connection proved to work; per-message lines are at debug, dead letters at warn
// at most every 10 s. Status reports the state for status pages and metrics.
package uplink
