package devicetest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// python is Debian's interpreter, the one python3-qpid-proton installs into; a python3
// earlier on PATH (a virtualenv, a newer build) would not have the module.
const python = "/usr/bin/python3"

//go:embed device.py
var deviceScript string

// Style is how the Python device drives Proton.
type Style string

const (
	// Reactor is proton.reactor.Container with a MessagingHandler: it sends as many
	// messages as the link credit allows and counts the outcomes as they arrive.
	Reactor Style = "reactor"
	// Blocking is proton.utils.BlockingConnection: each send waits for its outcome.
	Blocking Style = "blocking"
)

// SASL is how the Python device authenticates.
type SASL string

const (
	NoSASL    SASL = "none"      // no SASL layer: the AMQP header straight away
	Anonymous SASL = "anonymous" // SASL ANONYMOUS
	Plain     SASL = "plain"     // SASL PLAIN with PythonOptions.User and Password
)

// PythonOptions configure one Python device. Zero fields take the defaults documented
// on each.
type PythonOptions struct {
	Addr     string        // host:port of the server; required
	Address  string        // target address; default "telemetry"
	Count    int           // messages to send; default 1
	Size     int           // body size in bytes; default 100
	Settled  bool          // send pre-settled (the AtMostOnce link option)
	Style    Style         // default Reactor
	SASL     SASL          // default NoSASL
	User     string        // for Plain
	Password string        // for Plain
	Device   string        // device id: the container-id and the "device" property; default "device"
	Timeout  time.Duration // the device gives up after this long; default 30s
	Trace    bool          // PN_TRACE_FRM=1: Proton prints every frame to stderr, which is logged; also set by PN_TRACE_FRM=1 in the environment
}

func (o *PythonOptions) setDefaults() {
	deviceDefaults(&o.Address, &o.Count, &o.Size, &o.Device, "device", &o.Timeout)
	if o.Style == "" {
		o.Style = Reactor
	}
	if o.SASL == "" {
		o.SASL = NoSASL
	}
}

// Result is what a Python device reports when it ends.
type Result struct {
	Style       string   `json:"style"`
	Device      string   `json:"device"`
	Sent        int      `json:"sent"`         // messages handed to Proton
	Accepted    int      `json:"accepted"`     // outcomes of unsettled messages
	Rejected    int      `json:"rejected"`     //
	Released    int      `json:"released"`     //
	Modified    int      `json:"modified"`     //
	SettledSent int      `json:"settled_sent"` // pre-settled messages sent
	Conditions  []string `json:"conditions"`   // "condition: description" of each rejection
	Errors      []string `json:"errors"`       // connection, session, link and time-out errors
	Elapsed     float64  `json:"elapsed"`      // seconds from start to end, in the device

	ExitCode int    `json:"-"` // 1 when Errors is not empty
	Stderr   string `json:"-"` // Proton's logs and, with Trace, its frames
}

// Device is a running Python device, started by StartPython.
type Device struct {
	t      testing.TB
	opts   PythonOptions
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // from cmd.Wait; set before done is closed
	killed atomic.Bool   // killed after the time-out
}

// Python runs a device to its end and returns its report. It must be called from the
// goroutine running the test. A device that fails to connect or send is not a test
// failure: the Result says what happened. The test fails when the device cannot run, does
// not finish within its Timeout (it is then killed), or prints no report.
func Python(t testing.TB, opts PythonOptions) Result {
	t.Helper()
	return StartPython(t, opts).Wait()
}

// StartPython starts a device and returns without waiting for it, so several devices can
// run at once. The process is killed at the end of the test if it still runs.
func StartPython(t testing.TB, opts PythonOptions) *Device {
	t.Helper()
	checkPython(t)
	opts.setDefaults()
	if opts.Addr == "" {
		t.Fatal("devicetest: PythonOptions.Addr is empty")
	}
	args := []string{"-c", deviceScript,
		"--url", opts.Addr,
		"--address", opts.Address,
		"--count", strconv.Itoa(opts.Count),
		"--size", strconv.Itoa(opts.Size),
		"--style", string(opts.Style),
		"--sasl", string(opts.SASL),
		"--device", opts.Device,
		"--timeout", strconv.FormatFloat(opts.Timeout.Seconds(), 'f', 3, 64),
	}
	if opts.Settled {
		args = append(args, "--settled")
	}
	if opts.SASL == Plain {
		args = append(args, "--user", opts.User)
	}
	d := &Device{t: t, opts: opts, done: make(chan struct{})}
	d.cmd = exec.Command(python, args...)
	d.cmd.Env = append(os.Environ(), "DEVICE_PASSWORD="+opts.Password) // not in ps
	if os.Getenv("PN_TRACE_FRM") == "1" {
		d.opts.Trace = true
	} else if opts.Trace {
		d.cmd.Env = append(d.cmd.Env, "PN_TRACE_FRM=1")
	}
	d.cmd.Stdout = &d.stdout
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("devicetest: start python device %s: %v", opts.Device, err)
	}
	// The device enforces its own Timeout and reports it; the kill is the backstop for a
	// device that hangs regardless.
	kill := time.AfterFunc(opts.Timeout+10*time.Second, func() {
		d.killed.Store(true)
		d.cmd.Process.Kill() // by PID
	})
	go func() {
		d.err = d.cmd.Wait()
		kill.Stop()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			kill.Stop()
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// Done returns a channel that is closed when the device's process has ended.
func (d *Device) Done() <-chan struct{} { return d.done }

// Wait waits for the device to end and returns its report; see Python for when the test
// fails. It must be called from the goroutine running the test.
func (d *Device) Wait() Result {
	d.t.Helper()
	<-d.done
	name := "python device " + d.opts.Device
	stderr := d.stderr.String()
	if d.opts.Trace && stderr != "" {
		d.t.Logf("%s stderr:\n%s", name, stderr)
	}
	if d.killed.Load() {
		d.t.Fatalf("devicetest: %s killed after %s; stdout: %q; stderr:\n%s",
			name, d.opts.Timeout+10*time.Second, d.stdout.String(), tail(stderr))
	}
	var r Result
	line := lastLine(d.stdout.String())
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		d.t.Fatalf("devicetest: %s: no report (%v; exit: %v); stdout: %q; stderr:\n%s",
			name, err, d.err, d.stdout.String(), tail(stderr))
	}
	r.Stderr = stderr
	r.ExitCode = d.cmd.ProcessState.ExitCode()
	if (r.ExitCode == 0) != (len(r.Errors) == 0) {
		d.t.Fatalf("devicetest: %s exited with %d and reported errors %q", name, r.ExitCode, r.Errors)
	}
	return r
}

var pythonCheck struct {
	once sync.Once
	err  error
}

// checkPython skips (or fails) t when the interpreter or the proton module is missing.
// The check runs once per test process.
func checkPython(t testing.TB) {
	t.Helper()
	pythonCheck.once.Do(func() {
		if _, err := os.Stat(python); err != nil {
			pythonCheck.err = err
			return
		}
		out, err := exec.Command(python, "-c", "import proton, proton.reactor, proton.utils").CombinedOutput()
		if err != nil {
			pythonCheck.err = fmt.Errorf("%s cannot import proton (install python3-qpid-proton): %w: %s",
				python, err, strings.TrimSpace(string(out)))
		}
	})
	if pythonCheck.err != nil {
		unavailable(t, "%v", pythonCheck.err)
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// tail returns the end of a long output, where the error usually is.
func tail(s string) string {
	const max = 8 << 10
	if len(s) <= max {
		return s
	}
	return "…" + s[len(s)-max:]
}
