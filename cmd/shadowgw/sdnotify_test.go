package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a unix datagram socket standing in for systemd's: it sets
// NOTIFY_SOCKET for the test and collects what arrives.
type notifySocket struct {
	conn *net.UnixConn
}

func listenNotify(t *testing.T, name string) *notifySocket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return &notifySocket{c}
}

// next returns the next datagram, or fails the test after timeout.
func (s *notifySocket) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %v: %v", timeout, err)
	}
	return string(buf[:n])
}

// waitFor returns the first datagram containing line, skipping others.
func (s *notifySocket) waitFor(t *testing.T, line string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := s.next(t, time.Until(deadline))
		for _, l := range strings.Split(msg, "\n") {
			if l == line {
				return msg
			}
		}
	}
}

func TestSdNotify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		socket string
	}{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@shadowgw-test-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := listenNotify(t, tc.socket)
			if err := sdNotify("READY=1\nSTATUS=up"); err != nil {
				t.Fatal(err)
			}
			if got, want := s.next(t, 5*time.Second), "READY=1\nSTATUS=up"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestSdNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("got %v, want nil without NOTIFY_SOCKET", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := sdNotify("READY=1"); err == nil {
		t.Error("got nil, want an error for a socket nobody listens on")
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if err := sdNotify("READY=1"); err == nil {
		t.Error("got nil, want an error for an unsupported address")
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		usec    string
		pid     string
		want    time.Duration
		wantErr bool
	}{
		{"unset", "", "", 0, false},
		{"half of usec", "30000000", "", 15 * time.Second, false},
		{"for this process", "2000000", self, time.Second, false},
		{"for another process", "2000000", "1", 0, false},
		{"zero", "0", "", 0, true},
		{"not a number", "30s", "", 0, true},
		{"beyond time.Duration", "18446744073709551615", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, err := watchdogInterval()
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("got %v, %v, want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestNotifySystemd runs the binary as systemd runs it for the unit in
// systemd/ (Type=notify, WatchdogSec=) and checks the three notifications:
// READY=1 only once devices can connect, WATCHDOG=1 at half the watchdog
// period, STOPPING=1 on SIGTERM. It logs the time from exec to READY=1.
func TestNotifySystemd(t *testing.T) {
	s := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("WATCHDOG_USEC", "400000") // pings every 200ms
	t.Setenv("WATCHDOG_PID", "")

	addr := freeAddr(t)
	log := &syncBuffer{}
	cmd := exec.Command(binary, "run", "--listen", addr, "--data", t.TempDir())
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	msg := s.waitFor(t, "READY=1", 30*time.Second)
	took := time.Since(start)
	// The listener must accept already: one dial, no retry.
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("READY=1 came before the listener accepts: %v\n%s", err, log)
	}
	c.Close()
	if !strings.Contains(msg, "STATUS=listening for devices on "+addr) {
		t.Errorf("READY datagram %q lacks the listening status", msg)
	}
	t.Logf("READY=1 %v after exec", took.Round(time.Millisecond))

	before := time.Now()
	msg = s.waitFor(t, "WATCHDOG=1", 5*time.Second)
	if d := time.Since(before); d > 2*time.Second {
		t.Errorf("first WATCHDOG=1 after %v, want about 200ms", d)
	}
	if !strings.Contains(msg, "STATUS=") || !strings.Contains(msg, "0 messages queued") {
		t.Errorf("watchdog datagram %q lacks the status line", msg)
	}
	s.waitFor(t, "WATCHDOG=1", 5*time.Second) // and it keeps coming

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, "STOPPING=1", 10*time.Second)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("gateway did not exit after SIGTERM:\n%s", log)
	}
	if !cmd.ProcessState.Success() {
		t.Errorf("gateway exit: %v\n%s", cmd.ProcessState, log)
	}
}
