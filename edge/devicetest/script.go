package devicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	var r Result
	if err := json.Unmarshal([]byte(lastLine(out.String())), &r); err != nil {
		t.Fatalf("devicetest: %s: no report (%v; exit: %v); stdout: %q; stderr:\n%s", name, err, run.ProcessState, out.String(), tail(errOut.String()))
	}
	r.Stderr = errOut.String()
	r.ExitCode = run.ProcessState.ExitCode()
	if (r.ExitCode == 0) != (len(r.Errors) == 0) {
		t.Fatalf("devicetest: %s exited with %d and reported errors %q; stderr:\n%s", name, r.ExitCode, r.Errors, tail(r.Stderr))
	}
	return r
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

// nodeModules returns the node_modules folder that scripts/install-test-deps.sh fills
// with `npm ci` from scripts/package.json, found by walking up from the working
// directory to the module's root.
func nodeModules() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			nm := filepath.Join(dir, "scripts", "node_modules")
			if _, err := os.Stat(filepath.Join(nm, "rhea", "package.json")); err != nil {
				return "", fmt.Errorf("rhea is not installed in %s (run scripts/install-test-deps.sh)", nm)
			}
			return nm, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
