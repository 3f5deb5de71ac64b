package devicetest

import "testing"

// ProtonReceive builds Debian's receive.c example once per process and returns the
// program; it skips the test (fails it with SHADOWGW_REQUIRE_PEERS=1) when it cannot be
// built. Run it with RunProtonSend's arguments: it connects without SASL, attaches a
// receiver to the address, accepts count messages, printing each body on a line, and
// prints "COUNT messages received" at the end.
func ProtonReceive(t testing.TB) string {
	t.Helper()
	return protonExample(t, "receive")
}
