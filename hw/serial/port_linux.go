package serial

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Port is an open serial line. Read, SetReadDeadline and Close may be called from
// different goroutines; Close is idempotent.
type Port struct {
	f    *os.File
	once sync.Once
	err  error
}

var baudFlags = map[int]uint32{
	1200: unix.B1200, 1800: unix.B1800, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600, 115200: unix.B115200,
	230400: unix.B230400, 460800: unix.B460800, 500000: unix.B500000, 576000: unix.B576000,
	921600: unix.B921600, 1000000: unix.B1000000, 1152000: unix.B1152000, 1500000: unix.B1500000,
	2000000: unix.B2000000, 2500000: unix.B2500000, 3000000: unix.B3000000, 3500000: unix.B3500000,
	4000000: unix.B4000000,
}

var sizeFlags = map[int]uint32{5: unix.CS5, 6: unix.CS6, 7: unix.CS7, 8: unix.CS8}

// Open opens the terminal device at path for reading, takes exclusive use of it
// (TIOCEXCL: other opens fail with EBUSY, except root's) and sets c in raw mode. The
// caller closes the Port.
func Open(path string, c Config) (*Port, error) {
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("serial: %s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := setup(fd, c); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("serial: %s: %w", path, err)
	}
	// The descriptor is non-blocking, so os.NewFile hands it to the poller.
	return &Port{f: os.NewFile(uintptr(fd), path)}, nil
}

func setup(fd int, c Config) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) {
			return errors.New("not a terminal device")
		}
		return fmt.Errorf("get termios: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL |
		unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK | unix.IGNPAR
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= sizeFlags[c.DataBits] | unix.CREAD | unix.CLOCAL | baudFlags[c.Baud]
	switch c.Parity {
	case 'E':
		t.Cflag |= unix.PARENB
		t.Iflag |= unix.INPCK | unix.IGNPAR // drop bytes with a parity error
	case 'O':
		t.Cflag |= unix.PARENB | unix.PARODD
		t.Iflag |= unix.INPCK | unix.IGNPAR
	}
	if c.StopBits == 2 {
		t.Cflag |= unix.CSTOPB
	}
	t.Ispeed, t.Ospeed = uint32(c.Baud), uint32(c.Baud)
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
		return fmt.Errorf("exclusive use: %w", err)
	}
	return nil
}

// Read reads what arrived. It returns an error when the device went away (a USB
// adapter unplugged: EIO or end of file), the deadline passed
// (os.ErrDeadlineExceeded) or the Port was closed (os.ErrClosed).
func (p *Port) Read(b []byte) (int, error) { return p.f.Read(b) }

// SetReadDeadline sets the time after which Read fails; the zero time means none.
func (p *Port) SetReadDeadline(t time.Time) error { return p.f.SetReadDeadline(t) }

// Name returns the path the Port was opened with.
func (p *Port) Name() string { return p.f.Name() }

// Close gives up exclusive use and closes the line; a Read blocked in another
// goroutine returns os.ErrClosed.
func (p *Port) Close() error {
	p.once.Do(func() {
		// The exclusive flag belongs to the terminal, which for a pseudo-terminal
		// outlives this descriptor: clear it so that the line can be opened again.
		if rc, err := p.f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = unix.IoctlSetInt(int(fd), unix.TIOCNXCL, 0) })
		}
		p.err = p.f.Close()
	})
	return p.err
}
