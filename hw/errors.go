package hw

import (
	"errors"

	"github.com/shadowgw/shadowgw/hw/ds18b20"
	"github.com/shadowgw/shadowgw/hw/nmea"
	"github.com/shadowgw/shadowgw/hw/sht3x"
)

// ErrSpec is wrapped by the errors of New about an invalid Spec.
var ErrSpec = errors.New("invalid input")

// errSkip marks a line that is not a reading but no error either: an NMEA sentence
// other than GGA and RMC or without a fix, a CSV line repeating the header, a reading
// within Spec.Interval of the previous one.
var errSkip = errors.New("not a reading")

// isChecksum reports whether err is a checksum or CRC mismatch.
func isChecksum(err error) bool {
	return errors.Is(err, nmea.ErrChecksum) || errors.Is(err, sht3x.ErrCRC) || errors.Is(err, ds18b20.ErrCRC)
}
