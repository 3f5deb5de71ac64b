//go:build linux

// Package serialtest makes pseudo-terminal pairs for tests of serial inputs, the way
// net/http/httptest makes servers: the test writes to the master what a GPS receiver
// or a microcontroller would send, and the code under test opens the other end, the
// slave, by its path (/dev/pts/N) as it would open /dev/ttyUSB0.
//
// Closing the master is what unplugging a USB adapter looks like from the reading
// side: reads fail with EIO, and the slave's path disappears.
package serialtest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal pair.
type PTY struct {
	// Master is the controlling end the test writes to.
	Master *os.File
	// Path is the slave's device path, /dev/pts/N.
	Path string
}

// Open creates a pseudo-terminal pair: it opens /dev/ptmx, unlocks the slave
// (TIOCSPTLCK, what unlockpt(3) does; grantpt(3) has nothing to do on devpts) and
// reads its number (TIOCGPTN, what ptsname(3) does). The master is closed when the
// test ends, if not before.
func Open(t testing.TB) *PTY {
	t.Helper()
	p, err := open()
	if err != nil {
		t.Fatalf("serialtest: %v", err)
	}
	t.Cleanup(func() { p.Master.Close() })
	return p
}

func open() (*PTY, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pty number: %w", err)
	}
	// Non-blocking, so that os.NewFile hands it to the poller and deadlines work.
	return &PTY{Master: os.NewFile(uintptr(fd), "/dev/ptmx"), Path: fmt.Sprintf("/dev/pts/%d", n)}, nil
}

// Write sends s to the slave, as the device on the line would.
func (p *PTY) Write(t testing.TB, s string) {
	t.Helper()
	if _, err := p.Master.WriteString(s); err != nil {
		t.Errorf("serialtest: write: %v", err)
	}
}

// Unplug closes the master: the reading side gets EIO and the slave's path goes away.
func (p *PTY) Unplug() error { return p.Master.Close() }
