// Package sht3x drives the Sensirion SHT30, SHT31 and SHT35 humidity and temperature
// sensors over I²C, from the Sensirion SHT3x-DIS data sheet: single-shot measurements
// with high repeatability and clock stretching disabled (§4.3, Table 9), every word
// checked with the data sheet's CRC-8 (§4.12: polynomial 0x31, initialisation 0xFF).
//
// A Dev is not safe for concurrent use. It does not own the bus.
package sht3x

import (
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// I²C addresses (data sheet Table 7): the ADDR pin selects the lowest bit.
const (
	AddrLow  uint16 = 0x44 // ADDR to VSS (default)
	AddrHigh uint16 = 0x45 // ADDR to VDD
)

// Commands (data sheet §4), most significant byte first.
var (
	cmdMeasureHigh = []byte{0x24, 0x00} // single shot, high repeatability, no clock stretching
	cmdReadStatus  = []byte{0xF3, 0x2D}
	cmdClearStatus = []byte{0x30, 0x41}
)

// measureTime is the longest a high-repeatability measurement takes (data sheet Table
// 4: 15.5 ms), rounded up.
const measureTime = 16 * time.Millisecond

// ErrCRC is wrapped by errors about a word whose checksum does not match.
var ErrCRC = errors.New("crc mismatch")

// Dev is one SHT3x on an I²C bus.
type Dev struct {
	d     i2c.Dev
	sleep func(time.Duration)
}

// New checks that an SHT3x answers at addr by reading its status register (with its
// checksum) and clears the status flags (a set reset flag then means the sensor was
// reset since).
func New(bus i2c.Bus, addr uint16) (*Dev, error) {
	return newDev(bus, addr, time.Sleep)
}

func newDev(bus i2c.Bus, addr uint16, sleep func(time.Duration)) (*Dev, error) {
	d := &Dev{d: i2c.Dev{Bus: bus, Addr: addr}, sleep: sleep}
	if _, err := ReadStatus(bus, addr); err != nil {
		return nil, err
	}
	if err := d.d.Tx(cmdClearStatus, nil); err != nil {
		return nil, fmt.Errorf("sht3x: clear status: %w", err)
	}
	return d, nil
}

// ReadStatus reads the status register of the device at addr and checks its
// checksum, as `shadowgw sensors scan` does to name the device.
func ReadStatus(bus i2c.Bus, addr uint16) (uint16, error) {
	var r [3]byte
	if err := bus.Tx(addr, cmdReadStatus, r[:]); err != nil {
		return 0, fmt.Errorf("sht3x: read status at 0x%02x: %w", addr, err)
	}
	if c := CRC8(r[:2]); c != r[2] {
		return 0, fmt.Errorf("sht3x: status word 0x%02x%02x: crc 0x%02x, want 0x%02x: %w", r[0], r[1], r[2], c, ErrCRC)
	}
	return uint16(r[0])<<8 | uint16(r[1]), nil
}

// String names the device and its address.
func (d *Dev) String() string { return fmt.Sprintf("SHT3x at 0x%02x", d.d.Addr) }

// Sense runs one measurement and returns it. It takes about 16 ms. A word whose
// checksum does not match gives an error wrapping ErrCRC.
func (d *Dev) Sense() (Measurement, error) {
	if err := d.d.Tx(cmdMeasureHigh, nil); err != nil {
		return Measurement{}, fmt.Errorf("sht3x: start measurement: %w", err)
	}
	d.sleep(measureTime)
	var r [6]byte
	err := d.d.Tx(nil, r[:])
	if err != nil {
		// Without clock stretching the sensor does not acknowledge a read before the
		// measurement is done (§4.4); give it once more the time.
		d.sleep(measureTime)
		err = d.d.Tx(nil, r[:])
	}
	if err != nil {
		return Measurement{}, fmt.Errorf("sht3x: read measurement: %w", err)
	}
	for i, name := range []string{"temperature", "humidity"} {
		w := r[3*i : 3*i+3]
		if c := CRC8(w[:2]); c != w[2] {
			return Measurement{}, fmt.Errorf("sht3x: %s word 0x%02x%02x: crc 0x%02x, want 0x%02x: %w", name, w[0], w[1], w[2], c, ErrCRC)
		}
	}
	return Measurement{RawT: uint16(r[0])<<8 | uint16(r[1]), RawRH: uint16(r[3])<<8 | uint16(r[4])}, nil
}

// Measurement is one reading as the sensor sends it.
type Measurement struct {
	RawT, RawRH uint16 // S_T and S_RH
}

// Celsius returns the temperature, -45 + 175·S_T/(2¹⁶-1) °C (data sheet §4.13),
// rounded to 0.01 °C.
func (m Measurement) Celsius() float64 {
	return roundCenti(-4500 + 17500*float64(m.RawT)/65535)
}

// Percent returns the relative humidity, 100·S_RH/(2¹⁶-1) %RH (data sheet §4.13),
// rounded to 0.01 %RH.
func (m Measurement) Percent() float64 {
	return roundCenti(10000 * float64(m.RawRH) / 65535)
}

func roundCenti(hundredths float64) float64 {
	if hundredths < 0 {
		return float64(int64(hundredths-0.5)) / 100
	}
	return float64(int64(hundredths+0.5)) / 100
}

// CRC8 returns the data sheet's checksum of b: CRC-8 with polynomial 0x31 (x⁸ + x⁵ +
// x⁴ + 1), initialisation 0xFF, no reflection, no final XOR (§4.12, Table 20; CRC8 of
// 0xBE 0xEF is 0x92).
func CRC8(b []byte) byte {
	crc := byte(0xFF)
	for _, v := range b {
		crc ^= v
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
