//go:build linux

package hw

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/hw/serial/serialtest"
)

// plug makes a new pseudo-terminal and points link at it, as udev points
// /dev/serial/by-id/... at the adapter's device when it is plugged in.
func plug(t *testing.T, link string) *serialtest.PTY {
	t.Helper()
	pty := serialtest.Open(t)
	os.Remove(link)
	if err := os.Symlink(pty.Path, link); err != nil {
		t.Fatal(err)
	}
	return pty
}

// bodies returns the data sections of the stored messages.
func bodies(t *testing.T, st *memStore) []string {
	t.Helper()
	var out []string
	for _, sm := range st.messages() {
		var m amqp.Message
		if err := m.UnmarshalBinary(sm.Payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m.GetData()))
	}
	return out
}

// TestSerialGPSUnplugged plays a GPS receiver on a pseudo-terminal: good sentences,
// sentences that are not readings, a bad checksum, line noise and an overlong line;
// then the adapter is unplugged (the device and its link disappear) and plugged in
// again as a different device behind the same link.
func TestSerialGPSUnplugged(t *testing.T) {
	link := filepath.Join(t.TempDir(), "gps")
	pty := plug(t, link)
	in, err := New(Spec{Name: "gps", Kind: Serial, Device: link, Format: NMEA}, Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{}
	stop := runInput(t, in, st)
	checkFor(t, 5*time.Second, "the line opened", func() bool { return in.Status().Opens == 1 })

	pty.Write(t, "\x00\xff\xfe garbage at power-up\r\n"+
		"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"+
		"$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39\r\n"+
		"$GPGGA,123520,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"+ // checksum of the line before
		strings.Repeat("x", 5000)+"\r\n"+
		"\r\n"+
		"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n")
	checkFor(t, 5*time.Second, "two readings", func() bool { return in.Status().Readings == 2 })
	s := in.Status()
	if s.ChecksumErrors != 1 || s.ParseErrors != 2 || s.Skipped != 1 || !s.Open {
		t.Errorf("status = %+v, want 1 checksum error, 2 parse errors (noise, long line), 1 skipped", s)
	}
	b := bodies(t, st)
	if len(b) != 2 || !strings.Contains(b[0], `"type":"GGA"`) || !strings.Contains(b[1], `"type":"RMC","values":{"latitude":48.1173`) {
		t.Errorf("bodies = %q", b)
	}

	// Unplug: the line fails, the device and the link go away.
	pty.Unplug()
	os.Remove(link)
	checkFor(t, 5*time.Second, "the loss reported", func() bool { s := in.Status(); return !s.Open && s.Failures >= 2 })
	if s := in.Status(); !strings.Contains(s.LastError, "no such file") {
		t.Errorf("last error while unplugged = %q", s.LastError)
	}

	// Plug in again: a new device behind the link; the input reopens it.
	pty = plug(t, link)
	checkFor(t, 5*time.Second, "the line reopened", func() bool { return in.Status().Opens == 2 })
	pty.Write(t, "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n")
	checkFor(t, 5*time.Second, "a reading after replugging", func() bool { return in.Status().Readings == 3 })
	if s := in.Status(); s.Failures != 0 || !s.Open {
		t.Errorf("status after recovery = %+v", s)
	}
	stop()
}

// TestSerialMicrocontroller plays a microcontroller printing a CSV header and rows,
// with the interval keeping one reading per second, and an idle timeout that reopens
// the line when it goes silent.
func TestSerialMicrocontroller(t *testing.T) {
	pty := serialtest.Open(t)
	in, err := New(Spec{Name: "mcu", Kind: Serial, Device: pty.Path, Format: CSV, CSVHeader: []string{"t", "rh"},
		Units: map[string]string{"t": "°C"}, Interval: time.Hour, IdleTimeout: 200 * time.Millisecond, Serial: serialConfig(115200)},
		Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{}
	runInput(t, in, st)
	checkFor(t, 5*time.Second, "the line opened", func() bool { return in.Status().Opens >= 1 })
	pty.Write(t, "t,rh\n21.5,40\n21.6,41\n")
	checkFor(t, 5*time.Second, "one reading", func() bool { s := in.Status(); return s.Readings == 1 && s.Skipped == 2 })
	if b := bodies(t, st); len(b) != 1 || !strings.HasSuffix(b[0], `"values":{"t":21.5,"rh":40},"units":{"t":"°C"}}`) {
		t.Errorf("bodies = %q", b)
	}
	// Silent for longer than the idle timeout: reported and reopened.
	checkFor(t, 5*time.Second, "silence reported", func() bool {
		s := in.Status()
		return strings.Contains(s.LastError, "no line from") && s.Opens >= 2
	})
}

func TestReadOnceSerial(t *testing.T) {
	pty := serialtest.Open(t)
	in, err := New(Spec{Name: "mcu", Kind: Serial, Device: pty.Path, Format: JSON}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		pty.Write(t, "booting...\n{\"t\": 21.5}\n")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := in.ReadOnce(ctx)
	if err != nil || r.String() != "t 21.5" {
		t.Errorf("ReadOnce() = %q, %v", r, err)
	}
	if s := in.Status(); s.Readings != 0 || s.Opens != 0 {
		t.Errorf("ReadOnce changed the status: %+v", s)
	}

	// Nothing but noise until the context ends.
	go func() {
		time.Sleep(50 * time.Millisecond)
		pty.Write(t, "noise\n")
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := in.ReadOnce(ctx); err == nil || !strings.Contains(err.Error(), "1 lines rejected") {
		t.Errorf("ReadOnce() of noise: %v", err)
	}
}
