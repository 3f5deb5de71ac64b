//go:build linux

package serial

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/hw/serial/serialtest"
)

func TestParseFraming(t *testing.T) {
	for _, tt := range []struct {
		in         string
		data, stop int
		parity     byte
		wantErr    bool
	}{
		{"8N1", 8, 1, 'N', false},
		{"7E1", 7, 1, 'E', false},
		{"8o2", 8, 2, 'O', false},
		{"5N2", 5, 2, 'N', false},
		{"9N1", 0, 0, 0, true},
		{"8X1", 0, 0, 0, true},
		{"8N3", 0, 0, 0, true},
		{"8N", 0, 0, 0, true},
		{"", 0, 0, 0, true},
	} {
		d, p, s, err := ParseFraming(tt.in)
		if (err != nil) != tt.wantErr || d != tt.data || p != tt.parity || s != tt.stop {
			t.Errorf("ParseFraming(%q) = %d, %q, %d, %v", tt.in, d, p, s, err)
		}
	}
	if got := DefaultConfig.String(); got != "9600 8N1" {
		t.Errorf("DefaultConfig.String() = %q", got)
	}
	if err := (Config{Baud: 9601, DataBits: 8, Parity: 'N', StopBits: 1}).Check(); err == nil {
		t.Error("Check() accepted 9601 baud")
	}
}

// readLine reads from p until it has a line or fails.
func readLine(t *testing.T, p *Port) string {
	t.Helper()
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b []byte
	buf := make([]byte, 64)
	for !strings.HasSuffix(string(b), "\n") {
		n, err := p.Read(buf)
		if err != nil {
			t.Fatalf("Read after %q: %v", b, err)
		}
		b = append(b, buf[:n]...)
	}
	return string(b)
}

func TestPortRaw(t *testing.T) {
	for _, c := range []Config{DefaultConfig, {Baud: 115200, DataBits: 7, Parity: 'E', StopBits: 2}, {Baud: 4800, DataBits: 8, Parity: 'O', StopBits: 1}} {
		pty := serialtest.Open(t)
		p, err := Open(pty.Path, c)
		if err != nil {
			t.Fatalf("Open(%s): %v", c, err)
		}
		// Raw mode: CR is not turned into LF, control characters are not interpreted,
		// nothing is echoed back to the device.
		pty.Write(t, "$GP\x03x,1\r\n")
		if got := readLine(t, p); got != "$GP\x03x,1\r\n" {
			t.Errorf("%s: read %q, want the bytes as sent", c, got)
		}
		pty.Master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _ := pty.Master.Read(make([]byte, 16)); n > 0 {
			t.Errorf("%s: %d bytes echoed back to the device", c, n)
		}
		p.Close()
	}
}

func TestPortUnplugAndClose(t *testing.T) {
	pty := serialtest.Open(t)
	p, err := Open(pty.Path, DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Name() != pty.Path {
		t.Errorf("Name() = %q, want %q", p.Name(), pty.Path)
	}

	// A deadline ends a Read on a silent line.
	p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := p.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read on a silent line: %v, want os.ErrDeadlineExceeded", err)
	}

	// Unplugged: the read fails (EIO) and the device path is gone.
	p.SetReadDeadline(time.Time{})
	pty.Unplug()
	if _, err := p.Read(make([]byte, 8)); err == nil {
		t.Error("Read after unplug succeeded")
	}
	if _, err := os.Stat(pty.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after unplug: %v, want not exist", pty.Path, err)
	}
	if _, err := Open(pty.Path, DefaultConfig); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open after unplug: %v, want not exist", err)
	}

	// Close unblocks a Read in another goroutine, and may be repeated.
	pty2 := serialtest.Open(t)
	p2, err := Open(pty2.Path, DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := p2.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the Read block
	p2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("blocked Read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := p2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The line can be opened again (exclusive use was given up).
	p3, err := Open(pty2.Path, DefaultConfig)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	p3.Close()
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-tty")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file, DefaultConfig); err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Errorf("Open(regular file) = %v, want not a terminal", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "ttyUSB9"), DefaultConfig); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want not exist", err)
	}
	if _, err := Open("/dev/null", Config{Baud: 9600}); err == nil {
		t.Error("Open with framing 0?0 succeeded")
	}
}
