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

//go:embed rhea_device.js
var rheaScript []byte

// RheaOptions configure one rhea device; Device defaults to "rhea".
type RheaOptions = DeviceOptions

// Rhea runs a device on the rhea library (Node.js, npm; the version pinned in
// scripts/package.json, installed by scripts/install-test-deps.sh) to its end and
// returns its report. The device is at rhea's defaults: no SASL, a sender whose
// attach leaves the settlement modes out, unsettled sends pipelined up to the link
// credit; its messages are like the Python device's. Errors are as for Python.
func Rhea(t testing.TB, o RheaOptions) Result {
	t.Helper()
	node, err := exec.LookPath("node")
	var modules string
	if err == nil {
		modules, err = NodeModules()
	}
	if err != nil {
		unavailable(t, "rhea device: %v", err)
	}
	if o.Addr == "" {
		t.Fatal("devicetest: RheaOptions.Addr is empty")
	}
	deviceDefaults(&o.Address, &o.Count, &o.Size, &o.Device, "rhea", &o.Timeout)
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		t.Fatalf("devicetest: %v", err)
	}
	script := writeScript(t, "rhea_device.js", rheaScript)
	cmd := exec.Command(node, script, host, port, o.Address, strconv.Itoa(o.Count), strconv.Itoa(o.Size),
		o.Device, strconv.FormatFloat(o.Timeout.Seconds(), 'f', 3, 64))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	return runReport(t, "rhea device "+o.Device, cmd, o.Timeout+15*time.Second)
}
