package devicetest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBodyMatchesScript checks that Body gives the bytes device.py sends.
func TestBodyMatchesScript(t *testing.T) {
	checkPython(t)
	for _, c := range []struct{ seq, size int }{{0, 0}, {0, 1}, {7, 600}, {250, 251}, {1000, 70_000}} {
		prog := "import sys; g = {'__name__': 'devicetest'}; exec(sys.stdin.read(), g); " +
			"sys.stdout.buffer.write(g['body'](" + strconv.Itoa(c.seq) + ", " + strconv.Itoa(c.size) + "))"
		cmd := exec.Command(python, "-c", prog)
		cmd.Stdin = strings.NewReader(deviceScript)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("body(%d, %d): %v", c.seq, c.size, err)
		}
		if want := Body(c.seq, c.size); !bytes.Equal(got, want) {
			t.Errorf("body(%d, %d): script gives %d bytes %x…, Body gives %d bytes %x…",
				c.seq, c.size, len(got), got[:min(8, len(got))], len(want), want[:min(8, len(want))])
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestPythonConnectionRefused(t *testing.T) {
	addr := closedAddr(t)
	for _, style := range []Style{Reactor, Blocking} {
		t.Run(string(style), func(t *testing.T) {
			start := time.Now()
			r := Python(t, PythonOptions{Addr: addr, Style: style, Timeout: 10 * time.Second})
			if r.ExitCode != 1 || len(r.Errors) == 0 || r.Sent != 0 {
				t.Fatalf("exit %d, errors %q, sent %d; want exit 1, an error, nothing sent", r.ExitCode, r.Errors, r.Sent)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s to report a refused connection", d)
			}
			t.Logf("errors: %q", r.Errors)
		})
	}
}

func TestPythonTimeout(t *testing.T) {
	// A listener that accepts and never answers: the device must give up by itself.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	defer func() {
		ln.Close()
		<-done
	}()
	for _, style := range []Style{Reactor, Blocking} {
		t.Run(string(style), func(t *testing.T) {
			r := Python(t, PythonOptions{Addr: ln.Addr().String(), Style: style, Timeout: 500 * time.Millisecond})
			if r.ExitCode != 1 || len(r.Errors) == 0 || !strings.Contains(strings.Join(r.Errors, " "), "timed out") {
				t.Fatalf("exit %d, errors %q; want exit 1 and a time-out", r.ExitCode, r.Errors)
			}
		})
	}
}

func TestProtonSendBuild(t *testing.T) {
	bin := ProtonSend(t)
	if again := ProtonSend(t); again != bin {
		t.Errorf("second build gives %s, want %s", again, bin)
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("%s: %v, mode %v", bin, err, fi.Mode())
	}
	host, port, _ := net.SplitHostPort(closedAddr(t))
	out, err := RunProtonSend(t, bin, host, port, "x", 1)
	if err == nil {
		t.Fatalf("send to a closed port: no error; stdout %q", out)
	}
	t.Logf("send to a closed port: %v", err)
}

func TestLastLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"{}\n", "{}"},
		{"noise\n{\"a\":1}\n", "{\"a\":1}"},
		{"one", "one"},
	} {
		if got := lastLine(c.in); got != c.want {
			t.Errorf("lastLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
