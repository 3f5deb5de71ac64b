package devicetest

import (
	_ "embed"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed uamqp_device.py
var uamqpScript []byte

// UAMQPOptions configure one uAMQP-C device; Device defaults to "uamqp".
type UAMQPOptions = DeviceOptions

// UAMQP runs a device on Azure uAMQP-C, through Debian's python3-uamqp, to its end
// and returns its report (Sent, Accepted, Errors, Elapsed). The device uses
// uamqp.SendClient at its defaults: SASL ANONYMOUS, rcv-settle-mode second, and
// messages like the Python device's (application-properties device and seq, message-id
// "DEVICE:i", a data section of Body(i, Size)). The binding always speaks TLS, so the
// device connects through a TLS hop that relays to Addr. Errors are as for Python.
func UAMQP(t testing.TB, o UAMQPOptions) Result {
	t.Helper()
	checkUAMQP(t)
	if o.Addr == "" {
		t.Fatal("devicetest: UAMQPOptions.Addr is empty")
	}
	deviceDefaults(&o.Address, &o.Count, &o.Size, &o.Device, "uamqp", &o.Timeout)
	hop, ca := startTLSHop(t, o.Addr)
	host, port, _ := net.SplitHostPort(hop)
	script := writeScript(t, "uamqp_device.py", uamqpScript)
	cmd := exec.Command(python, script, "--host", host, "--port", port, "--ca", ca,
		"--address", o.Address, "--count", strconv.Itoa(o.Count), "--size", strconv.Itoa(o.Size),
		"--device", o.Device, "--timeout", strconv.FormatFloat(o.Timeout.Seconds(), 'f', 3, 64))
	return runReport(t, "uamqp device "+o.Device, cmd, o.Timeout+15*time.Second)
}

var uamqpCheck struct {
	once sync.Once
	err  error
}

// checkUAMQP skips (or fails) t when python3-uamqp is missing.
func checkUAMQP(t testing.TB) {
	t.Helper()
	uamqpCheck.once.Do(func() {
		out, err := exec.Command(python, "-c", "import uamqp").CombinedOutput()
		if err != nil {
			uamqpCheck.err = fmt.Errorf("%s cannot import uamqp (install python3-uamqp): %w: %s",
				python, err, strings.TrimSpace(string(out)))
		}
	})
	if uamqpCheck.err != nil {
		unavailable(t, "%v", uamqpCheck.err)
	}
}
