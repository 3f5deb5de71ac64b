// Package cloudtest runs a real cloud broker for tests, the way net/http/httptest runs an
// HTTP server: [StartRabbitMQ] starts a private RabbitMQ 3.10 node with the AMQP 1.0
// plugin, listening only for TLS on a free loopback port, and returns a [*Broker] that
// names its URL, CA, client certificate and users, reads messages back for assertions
// and can be stopped and started again to simulate an outage.
//
// The node is private: its own node name, Erlang cookie, epmd and distribution ports,
// data, log and configuration files, all under the test's temporary directory. The
// system's RabbitMQ service and its files are never touched. Starting a node costs
// 6–10 s, so tests share one where they can.
//
// [StartProton] runs a test server on Qpid Proton (Python) that answers with any outcome
// on demand; [StartRhea] a small broker on the rhea library (Node.js, pinned in
// scripts/package.json and installed into scripts/node_modules by
// scripts/install-test-deps.sh), a peer at another library's defaults.
//
// [NewCertificates] writes a throwaway CA with a server and a client certificate as PEM
// files; it is also useful on its own (for example, a second CA the server does not
// trust).
//
// When rabbitmq-server or epmd is not installed, StartRabbitMQ skips the test, unless the
// environment sets SHADOWGW_REQUIRE_PEERS=1, in which case it fails it. On Debian the
// packages come from scripts/install-test-deps.sh.
//
// A Broker's methods must be called from the test's goroutine, like testing.T's FailNow.
package cloudtest
