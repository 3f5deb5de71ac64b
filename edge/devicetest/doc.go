// Package devicetest runs real AMQP 1.0 device clients against a gateway address, for
// tests in any package.
//
// These client stacks are supported:
//
//   - Qpid Proton Python (python3-qpid-proton): [Python] and [StartPython] run the
//     embedded script device.py with /usr/bin/python3, in the event-driven style
//     (proton.reactor.Container, pipelined up to the link credit) or the blocking style
//     (proton.utils.BlockingConnection, one message at a time), with or without SASL
//     (ANONYMOUS or PLAIN), sending pre-settled or unsettled. Every message carries the
//     application-properties {"device": id, "seq": i}, the message-id "id:i" and one data
//     section holding [Body](i, size).
//   - Qpid Proton C (libqpid-proton11-dev, libqpid-proton11-dev-examples): [ProtonSend]
//     and [ProtonSendAbort] build Debian's example programs send.c and send-abort.c from
//     /usr/share/proton/examples/c, and [RunProtonSend] runs them. They do not use SASL.
//   - Azure uAMQP-C through Debian's python3-uamqp: [UAMQP] runs the embedded script
//     uamqp_device.py, uamqp.SendClient at its defaults (rcv-settle-mode second). The
//     binding only speaks TLS, so the device connects through a TLS hop that relays
//     to the gateway's plain port.
//   - rhea (Node.js, from npm, pinned in scripts/package.json and installed into
//     scripts/node_modules by scripts/install-test-deps.sh): [Rhea] runs the embedded
//     script rhea_device.js at rhea's defaults.
//
// Devices that receive (cloud → device commands), in receivers.go: [PythonReceiver],
// [RheaReceiver] and [UAMQPReceiver] attach a receiver at their library's defaults,
// take a number of messages, accept them but one, which they reject with
// [RejectCondition], and report the bodies in the order they came. Proton C's
// receive.c example ([ProtonReceive]) accepts every message.
//
// When a client cannot run (no /usr/bin/python3, no proton module, no C compiler or
// Proton headers) the test is skipped, or fails if the environment variable
// SHADOWGW_REQUIRE_PEERS is 1, as it is in CI.
//
// Setting PN_TRACE_FRM=1 in the test's environment makes the Proton clients print every
// frame they send and receive on stderr; [PythonOptions].Trace does it for one device.
package devicetest

import (
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns a missing client into a test failure
// instead of a skip.
const RequireEnv = "SHADOWGW_REQUIRE_PEERS"

// unavailable skips t because a client cannot run, or fails it when RequireEnv is 1.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("devicetest: "+format+" (and "+RequireEnv+"=1)", args...)
	}
	t.Skipf("devicetest: "+format, args...)
}

// patternLen is the period of the byte pattern in message bodies; device.py uses the
// same value.
const patternLen = 251

// Body returns the body of message seq of the given size, as the Python device sends it:
// byte j is (seq+j) mod 251, so consecutive messages differ and no body is one repeated
// byte.
func Body(seq, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte((seq + j) % patternLen)
	}
	return b
}
