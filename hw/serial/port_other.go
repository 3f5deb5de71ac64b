//go:build !linux

package serial

import (
	"errors"
	"time"
)

// Port is an open serial line; serial lines are supported on Linux only.
type Port struct{}

// Open fails: serial lines are supported on Linux only.
func Open(path string, c Config) (*Port, error) {
	return nil, errors.New("serial: supported on Linux only")
}

// Read fails.
func (p *Port) Read(b []byte) (int, error) { return 0, errors.ErrUnsupported }

// SetReadDeadline fails.
func (p *Port) SetReadDeadline(t time.Time) error { return errors.ErrUnsupported }

// Name returns "".
func (p *Port) Name() string { return "" }

// Close does nothing.
func (p *Port) Close() error { return nil }
