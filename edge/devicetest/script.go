package devicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// runReport runs cmd, which prints a JSON Result as its last line of output, kills it
// (by PID) if it is still running timeout after its start, and returns the report. The
// test fails when the program cannot start, is killed, or prints no report.
func runReport(t testing.TB, name string, cmd *exec.Cmd, timeout time.Duration) Result {
	t.Helper()
	var r Result
	r.Stderr, r.ExitCode = runJSON(t, name, cmd, timeout, &r)
	if (r.ExitCode == 0) != (len(r.Errors) == 0) {
		t.Fatalf("devicetest: %s exited with %d and reported errors %q; stderr:\n%s", name, r.ExitCode, r.Errors, tail(r.Stderr))
	}
	return r
}

// runJSON runs cmd as runReport does and decodes the JSON of its last line of output
// into report; it returns the program's standard error and exit code.
func runJSON(t testing.TB, name string, cmd *exec.Cmd, timeout time.Duration, report any) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	run := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	run.Env, run.Dir = cmd.Env, cmd.Dir
	run.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	run.Stdout, run.Stderr = &out, &errOut
	err := run.Run()
	if ctx.Err() != nil {
		t.Fatalf("devicetest: %s killed after %v; stdout: %q; stderr:\n%s", name, timeout, out.String(), tail(errOut.String()))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("devicetest: %s: %v", name, err)
	}
	if err := json.Unmarshal([]byte(lastLine(out.String())), report); err != nil {
		t.Fatalf("devicetest: %s: no report (%v; exit: %v); stdout: %q; stderr:\n%s", name, err, run.ProcessState, out.String(), tail(errOut.String()))
	}
	return errOut.String(), run.ProcessState.ExitCode()
}

// writeScript writes an embedded script into a temporary directory of the test and
// returns its path.
func writeScript(t testing.TB, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatalf("devicetest: %v", err)
	}
	return path
}

// DeviceOptions configure one device of a library other than Proton (rhea, uAMQP-C);
// zero fields take the defaults on each.
type DeviceOptions struct {
	Addr    string        // host:port of the gateway (plain AMQP); required
	Address string        // target address; default "telemetry"
	Count   int           // messages to send; default 1
	Size    int           // body size in bytes; default 100
	Device  string        // the container-id and the "device" property; default: the library's name
	Timeout time.Duration // the device gives up after this long; default 30s
}

// deviceDefaults fills the options every device has, where they are zero: the target
// address "telemetry", 1 message of 100 bytes, the device id device, a 30 s timeout.
func deviceDefaults(address *string, count, size *int, id *string, device string, timeout *time.Duration) {
	if *address == "" {
		*address = "telemetry"
	}
	if *count == 0 {
		*count = 1
	}
	if *size == 0 {
		*size = 100
	}
	if *id == "" {
		*id = device
	}
	if *timeout == 0 {
		*timeout = 30 * time.Second
	}
}
