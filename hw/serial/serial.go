// Package serial opens serial lines (a UART such as /dev/serial0, or a USB adapter
// such as /dev/ttyUSB0 or /dev/ttyACM0) for reading, with the baud rate and framing
// set through termios in raw mode: no echo, no line editing, no character
// translation, so that bytes arrive as the device sent them.
//
// A Port is an *os.File underneath, registered with Go's poller: Read honours
// SetReadDeadline, and Close from another goroutine makes a blocked Read return.
package serial

import (
	"fmt"
	"slices"
	"strconv"
)

// Config is a line's setting. The zero value is not valid; DefaultConfig is 9600 8N1.
type Config struct {
	Baud     int  // bits per second, one of Bauds
	DataBits int  // 5 to 8
	Parity   byte // 'N' none, 'E' even, 'O' odd
	StopBits int  // 1 or 2
}

// DefaultConfig is 9600 baud, 8 data bits, no parity, 1 stop bit: the usual setting
// of GPS receivers and many microcontroller sketches.
var DefaultConfig = Config{Baud: 9600, DataBits: 8, Parity: 'N', StopBits: 1}

// Bauds are the rates Open accepts: the standard rates that Linux sets without
// BOTHER.
var Bauds = []int{1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000,
	576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000}

// ParseFraming reads a framing in the usual notation: data bits, parity (N, E or O)
// and stop bits, "8N1", "7E1", "8N2".
func ParseFraming(s string) (dataBits int, parity byte, stopBits int, err error) {
	if len(s) != 3 || s[0] < '5' || s[0] > '8' || (s[2] != '1' && s[2] != '2') {
		return 0, 0, 0, fmt.Errorf("want data bits (5-8), parity (N, E or O) and stop bits (1 or 2) such as 8N1, got %q", s)
	}
	switch p := s[1] | 0x20; p {
	case 'n', 'e', 'o':
		parity = p - 0x20
	default:
		return 0, 0, 0, fmt.Errorf("want data bits (5-8), parity (N, E or O) and stop bits (1 or 2) such as 8N1, got %q", s)
	}
	return int(s[0] - '0'), parity, int(s[2] - '0'), nil
}

// Framing returns the framing as ParseFraming reads it: "8N1".
func (c Config) Framing() string {
	return strconv.Itoa(c.DataBits) + string(c.Parity) + strconv.Itoa(c.StopBits)
}

// String returns the setting as "9600 8N1".
func (c Config) String() string { return strconv.Itoa(c.Baud) + " " + c.Framing() }

// Check returns what is wrong with c, or nil.
func (c Config) Check() error {
	if !slices.Contains(Bauds, c.Baud) {
		return fmt.Errorf("baud rate %d: want one of %v", c.Baud, Bauds)
	}
	if _, _, _, err := ParseFraming(c.Framing()); err != nil {
		return err
	}
	return nil
}
