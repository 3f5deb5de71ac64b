package devicetest

import (
	_ "embed"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Devices that receive (cloud → device commands): Proton Python, rhea and uAMQP-C
// each attach a receiver at their library's defaults, take Count messages in the
// order they come, accept them, except one they reject, and report. (Proton C's
// receive.c example, [ProtonReceive], accepts every message.)

//go:embed receiver.py
var pythonReceiverScript []byte

//go:embed rhea_receiver.js
var rheaReceiverScript []byte

//go:embed uamqp_receiver.py
var uamqpReceiverScript []byte

// RejectCondition is the error condition a receiving device rejects its one refused
// message with; the description is "DEVICE refuses command I" (I counting from 0).
const RejectCondition = "shadowgw:test-refused"

// ReceiverOptions configure one receiving device.
type ReceiverOptions struct {
	Addr    string        // host:port of the gateway (plain AMQP); required
	Source  string        // the link's source address, e.g. "command/sensor-1"; required
	Count   int           // messages to take; default 1
	Reject  int           // which message to reject, counting from 1; 0: none
	Device  string        // the container-id; default: the library's name
	Timeout time.Duration // the device gives up after this long; default 30s
}

// Received is what a receiving device reports when it ends.
type Received struct {
	Device   string   `json:"device"`
	Bodies   []string `json:"bodies"`   // the messages' bodies as text, in the order they came
	Accepted int      `json:"accepted"` // outcomes the device sent
	Rejected int      `json:"rejected"`
	Errors   []string `json:"errors"`  // connection, link and time-out errors
	Elapsed  float64  `json:"elapsed"` // seconds, in the device

	ExitCode int    `json:"-"` // 1 when Errors is not empty
	Stderr   string `json:"-"`
}

func (o *ReceiverOptions) defaults(t testing.TB, device string) {
	t.Helper()
	if o.Addr == "" || o.Source == "" {
		t.Fatal("devicetest: ReceiverOptions needs Addr and Source")
	}
	var size int
	address := o.Source
	deviceDefaults(&address, &o.Count, &size, &o.Device, device, &o.Timeout)
}

func runReceiver(t testing.TB, name string, cmd *exec.Cmd, timeout time.Duration) Received {
	t.Helper()
	var r Received
	r.Stderr, r.ExitCode = runJSON(t, name, cmd, timeout+15*time.Second, &r)
	if (r.ExitCode == 0) != (len(r.Errors) == 0) {
		t.Fatalf("devicetest: %s exited with %d and reported errors %q; stderr:\n%s", name, r.ExitCode, r.Errors, tail(r.Stderr))
	}
	return r
}

// PythonReceiver runs a Proton Python receiving device (proton.reactor.Container at its
// defaults: prefetch 10, SASL ANONYMOUS offered when the server has SASL) to its end.
func PythonReceiver(t testing.TB, o ReceiverOptions) Received {
	t.Helper()
	checkPython(t)
	o.defaults(t, "proton-python")
	host, port, _ := net.SplitHostPort(o.Addr)
	script := writeScript(t, "receiver.py", pythonReceiverScript)
	cmd := exec.Command(python, script, "--host", host, "--port", port, "--source", o.Source,
		"--count", strconv.Itoa(o.Count), "--reject", strconv.Itoa(o.Reject-1), "--device", o.Device,
		"--sasl", "anonymous", "--timeout", strconv.FormatFloat(o.Timeout.Seconds(), 'f', 3, 64))
	return runReceiver(t, "python receiver "+o.Device, cmd, o.Timeout)
}

// RheaReceiver runs a rhea receiving device (no SASL, rhea's automatic credit) to its
// end.
func RheaReceiver(t testing.TB, o ReceiverOptions) Received {
	t.Helper()
	node, err := exec.LookPath("node")
	var modules string
	if err == nil {
		modules, err = NodeModules()
	}
	if err != nil {
		unavailable(t, "rhea device: %v", err)
	}
	o.defaults(t, "rhea")
	host, port, _ := net.SplitHostPort(o.Addr)
	script := writeScript(t, "rhea_receiver.js", rheaReceiverScript)
	cmd := exec.Command(node, script, host, port, o.Source, strconv.Itoa(o.Count), strconv.Itoa(o.Reject-1),
		o.Device, strconv.FormatFloat(o.Timeout.Seconds(), 'f', 3, 64))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	return runReceiver(t, "rhea receiver "+o.Device, cmd, o.Timeout)
}

// UAMQPReceiver runs a uAMQP-C receiving device (uamqp.ReceiveClient, SASL ANONYMOUS,
// through a TLS hop to Addr, as UAMQP does) to its end. uAMQP-C puts its whole URL,
// less the port, in the source address: amqps://127.0.0.1/SOURCE.
func UAMQPReceiver(t testing.TB, o ReceiverOptions) Received {
	t.Helper()
	checkUAMQP(t)
	o.defaults(t, "uamqp")
	hop, ca := startTLSHop(t, o.Addr)
	host, port, _ := net.SplitHostPort(hop)
	script := writeScript(t, "uamqp_receiver.py", uamqpReceiverScript)
	cmd := exec.Command(python, script, "--host", host, "--port", port, "--ca", ca, "--source", o.Source,
		"--count", strconv.Itoa(o.Count), "--reject", strconv.Itoa(o.Reject-1), "--device", o.Device,
		"--timeout", strconv.FormatFloat(o.Timeout.Seconds(), 'f', 3, 64))
	return runReceiver(t, "uamqp receiver "+o.Device, cmd, o.Timeout)
}
