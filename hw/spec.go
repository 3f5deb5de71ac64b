package hw

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/hw/ads1115"
	"github.com/shadowgw/shadowgw/hw/bme280"
	"github.com/shadowgw/shadowgw/hw/ds18b20"
	"github.com/shadowgw/shadowgw/hw/serial"
	"github.com/shadowgw/shadowgw/hw/sht3x"
)

// Kind is the sort of an input.
type Kind string

// Kinds of input.
const (
	BME280  Kind = "bme280"  // Bosch BME280 on I²C: temperature, pressure, humidity
	BMP280  Kind = "bmp280"  // Bosch BMP280 on I²C: temperature, pressure
	SHT3x   Kind = "sht3x"   // Sensirion SHT30/31/35 on I²C: temperature, humidity
	ADS1115 Kind = "ads1115" // TI ADS1115 on I²C: one voltage
	DS18B20 Kind = "ds18b20" // Maxim DS18B20 on 1-Wire (sysfs): temperature
	Serial  Kind = "serial"  // a serial line: JSON lines, CSV or NMEA 0183
)

// Kinds lists every kind, in the order documentation gives them.
var Kinds = []Kind{BME280, BMP280, SHT3x, ADS1115, DS18B20, Serial}

// I2C reports whether inputs of kind k are read over I²C.
func (k Kind) I2C() bool { return k == BME280 || k == BMP280 || k == SHT3x || k == ADS1115 }

// Polled reports whether inputs of kind k are read every Spec.Interval (I²C and
// 1-Wire); the others are line-driven.
func (k Kind) Polled() bool { return k.I2C() || k == DS18B20 }

// Chip returns the name of the chip an input of kind k reads: "SHT3x".
func (k Kind) Chip() string {
	switch k {
	case SHT3x:
		return "SHT3x"
	case Serial:
		return "serial line"
	}
	return strings.ToUpper(string(k))
}

// Addresses returns the I²C addresses a chip of kind k can have, the default first.
func (k Kind) Addresses() []uint16 {
	switch k {
	case BME280, BMP280:
		return []uint16{bme280.AddrLow, bme280.AddrHigh}
	case SHT3x:
		return []uint16{sht3x.AddrLow, sht3x.AddrHigh}
	case ADS1115:
		return []uint16{ads1115.AddrGND, ads1115.AddrVDD, ads1115.AddrSDA, ads1115.AddrSCL}
	}
	return nil
}

// Format is the content of a serial line.
type Format string

// Serial line formats.
const (
	JSON Format = "json" // one JSON object per line; its members are the values
	CSV  Format = "csv"  // comma-separated values, named by Spec.CSVHeader
	NMEA Format = "nmea" // NMEA 0183 sentences; GGA and RMC are readings
)

// Formats lists the serial line formats.
var Formats = []Format{JSON, CSV, NMEA}

// Defaults for a Spec's zero fields.
const (
	DefaultBus      = "/dev/i2c-1"
	DefaultInterval = 10 * time.Second
	DefaultW1Dir    = ds18b20.DefaultDir
)

// Spec describes an input.
type Spec struct {
	Name   string // unique among inputs; the message subject and source "input:NAME"
	Kind   Kind
	Target string // store address of its messages; default "sensors/NAME"

	// Interval is, for polled inputs, the time between readings (default
	// DefaultInterval); for serial inputs, the shortest time between two stored
	// readings of one type, later ones being skipped (0: store every reading).
	Interval time.Duration

	Bus  string         // I²C: the bus device, /dev/i2c-N (default DefaultBus)
	Addr uint16         // I²C: the chip's address (default the kind's first)
	ADC  ads1115.Config // ADS1115: input, range, data rate

	// Device is, for serial inputs, the device path (/dev/ttyUSB0); for DS18B20, the
	// sensor's ROM id (28-0316a2795aff), or "" for the only one present.
	Device string
	W1Dir  string // DS18B20: where the kernel lists 1-Wire devices (default DefaultW1Dir)

	Serial      serial.Config     // serial: baud rate and framing
	Format      Format            // serial: what the lines hold
	CSVHeader   []string          // serial, CSV: the names of the columns
	Units       map[string]string // serial, JSON and CSV: unit by value name
	IdleTimeout time.Duration     // serial: reopen the line after this long without a line; 0: never
}

// Source returns the store source of the input's messages, "input:NAME".
func (s Spec) Source() string { return "input:" + s.Name }

// withDefaults fills the zero fields that have a default.
func (s Spec) withDefaults() Spec {
	if s.Target == "" {
		s.Target = "sensors/" + s.Name
	}
	if s.Kind.Polled() && s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Kind.I2C() {
		if s.Bus == "" {
			s.Bus = DefaultBus
		}
		if s.Addr == 0 {
			s.Addr = s.Kind.Addresses()[0]
		}
	}
	if s.Kind == ADS1115 && s.ADC.DataRate == 0 {
		s.ADC.DataRate = ads1115.DefaultConfig.DataRate
	}
	if s.Kind == DS18B20 && s.W1Dir == "" {
		s.W1Dir = DefaultW1Dir
	}
	if s.Kind == Serial && s.Serial == (serial.Config{}) {
		s.Serial = serial.DefaultConfig
	}
	return s
}

// check returns what is wrong with a Spec whose defaults were filled.
func (s Spec) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrSpec, s.Name, fmt.Sprintf(format, args...))
	}
	if s.Name == "" {
		return bad("no name")
	}
	if s.Interval < 0 || (s.Kind.Polled() && s.Interval < 10*time.Millisecond) {
		return bad("interval %v", s.Interval)
	}
	switch {
	case s.Kind.I2C():
		if _, err := busNumber(s.Bus); err != nil {
			return bad("%v", err)
		}
		ok := false
		for _, a := range s.Kind.Addresses() {
			ok = ok || a == s.Addr
		}
		if !ok {
			return bad("%s has no address 0x%02x", s.Kind, s.Addr)
		}
	case s.Kind == DS18B20:
		if s.Device != "" && !ds18b20.ValidID(s.Device) {
			return bad("1-Wire id %q", s.Device)
		}
	case s.Kind == Serial:
		if !filepath.IsAbs(s.Device) {
			return bad("device %q is not an absolute path", s.Device)
		}
		if err := s.Serial.Check(); err != nil {
			return bad("%v", err)
		}
		switch s.Format {
		case JSON, NMEA:
		case CSV:
			if len(s.CSVHeader) == 0 {
				return bad("csv without a header")
			}
		default:
			return bad("format %q", s.Format)
		}
	default:
		return bad("kind %q", s.Kind)
	}
	return nil
}

// describe names what the input reads, for logs and status.
func (s Spec) describe() string {
	switch {
	case s.Kind.I2C():
		return fmt.Sprintf("%s at 0x%02x on %s", s.Kind.Chip(), s.Addr, s.Bus)
	case s.Kind == DS18B20:
		if s.Device == "" {
			return "DS18B20 in " + s.W1Dir
		}
		return "DS18B20 " + s.Device + " in " + s.W1Dir
	}
	return fmt.Sprintf("%s (%s, %s)", s.Device, s.Serial, s.Format)
}
