// Package ads1115 drives the Texas Instruments ADS1115 16-bit analog-to-digital
// converter over I²C, from its data sheet (SBAS444): single-shot conversions (§9.4.2)
// with a configurable input multiplexer, programmable-gain amplifier and data rate.
//
// A Dev is not safe for concurrent use. It does not own the bus.
package ads1115

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// I²C addresses (data sheet Table 4): the ADDR pin connected to GND, VDD, SDA or SCL.
const (
	AddrGND uint16 = 0x48
	AddrVDD uint16 = 0x49
	AddrSDA uint16 = 0x4A
	AddrSCL uint16 = 0x4B
)

// Registers (data sheet §9.6, Table 6) and config register fields (Table 8).
const (
	regConversion = 0x00
	regConfig     = 0x01

	cfgOS         = 1 << 15 // write: start a single conversion; read: 1 when idle
	cfgModeSingle = 1 << 8
	cfgCompQueOff = 0b11 // comparator disabled, ALERT/RDY high impedance

	// PowerOnConfig is the config register's reset value (Table 8): what a freshly
	// powered ADS1115 reads, which `shadowgw sensors scan` uses to name it.
	PowerOnConfig = 0x8583
)

// Mux selects the input (config bits 14:12): the positive input AINP and the negative
// input AINN, either another pin or GND.
type Mux uint8

// Input multiplexer settings (Table 8, MUX[2:0]).
const (
	AIN0AIN1 Mux = iota // AINP = AIN0, AINN = AIN1 (the reset value)
	AIN0AIN3
	AIN1AIN3
	AIN2AIN3
	AIN0 // AINP = AIN0, AINN = GND
	AIN1
	AIN2
	AIN3
)

var muxNames = [...]string{"ain0-ain1", "ain0-ain3", "ain1-ain3", "ain2-ain3", "ain0", "ain1", "ain2", "ain3"}

// String returns the setting as ParseMux reads it: "ain0" (against GND) or
// "ain0-ain1" (differential).
func (m Mux) String() string {
	if int(m) < len(muxNames) {
		return muxNames[m]
	}
	return fmt.Sprintf("mux(%d)", uint8(m))
}

// ParseMux reads an input setting: ain0…ain3 against GND, or one of the differential
// pairs ain0-ain1, ain0-ain3, ain1-ain3, ain2-ain3.
func ParseMux(s string) (Mux, error) {
	for i, n := range muxNames {
		if strings.EqualFold(s, n) {
			return Mux(i), nil
		}
	}
	return 0, fmt.Errorf("want one of %s, got %q", strings.Join(muxNames[:], ", "), s)
}

// Gain is the programmable-gain amplifier setting (config bits 11:9), named by its
// full-scale range.
type Gain uint8

// Full-scale ranges (Table 8, PGA[2:0]). The analog inputs must stay within GND - 0.3
// V and VDD + 0.3 V whatever the range (§7.1).
const (
	FSR6144 Gain = iota // ±6.144 V
	FSR4096             // ±4.096 V
	FSR2048             // ±2.048 V (the reset value)
	FSR1024             // ±1.024 V
	FSR0512             // ±0.512 V
	FSR0256             // ±0.256 V
)

var fullScale = [...]int64{6144, 4096, 2048, 1024, 512, 256} // millivolts

// FullScale returns the full-scale range in volts.
func (g Gain) FullScale() float64 { return float64(fullScale[g]) / 1000 }

// String returns the full-scale range as ParseGain reads it: "2.048".
func (g Gain) String() string {
	if int(g) < len(fullScale) {
		return strconv.FormatFloat(g.FullScale(), 'f', 3, 64)
	}
	return fmt.Sprintf("gain(%d)", uint8(g))
}

// ParseGain reads a full-scale range in volts, with or without a trailing "V":
// 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256.
func ParseGain(s string) (Gain, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "V"), 64)
	if err == nil {
		for i, mv := range fullScale {
			if math.Abs(v*1000-float64(mv)) < 0.5 {
				return Gain(i), nil
			}
		}
	}
	return 0, fmt.Errorf("want a full-scale range in volts: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256, got %q", s)
}

// DataRates are the conversion rates in samples per second (Table 8, DR[2:0]).
var DataRates = [...]int{8, 16, 32, 64, 128, 250, 475, 860}

// Config is a Dev's conversion setting. The zero value reads AIN0 against AIN1 at
// ±6.144 V; DefaultConfig is the chip's reset setting.
type Config struct {
	Mux      Mux
	Gain     Gain
	DataRate int // samples per second, one of DataRates
}

// DefaultConfig is the reset setting: AIN0-AIN1, ±2.048 V, 128 samples per second.
var DefaultConfig = Config{Mux: AIN0AIN1, Gain: FSR2048, DataRate: 128}

// word returns the config register value that starts a single conversion.
func (c Config) word() (uint16, error) {
	if int(c.Mux) >= len(muxNames) || int(c.Gain) >= len(fullScale) {
		return 0, fmt.Errorf("ads1115: invalid mux %d or gain %d", c.Mux, c.Gain)
	}
	dr := -1
	for i, r := range DataRates {
		if r == c.DataRate {
			dr = i
		}
	}
	if dr < 0 {
		return 0, fmt.Errorf("ads1115: data rate %d: want one of %v samples per second", c.DataRate, DataRates)
	}
	return cfgOS | uint16(c.Mux)<<12 | uint16(c.Gain)<<9 | cfgModeSingle | uint16(dr)<<5 | cfgCompQueOff, nil
}

// Dev is one ADS1115 on an I²C bus.
type Dev struct {
	d     i2c.Dev
	cfg   Config
	word  uint16
	sleep func(time.Duration)
}

// New checks that a device answers at addr by reading its config register. The
// converter stays powered down between conversions.
func New(bus i2c.Bus, addr uint16, c Config) (*Dev, error) {
	return newDev(bus, addr, c, time.Sleep)
}

func newDev(bus i2c.Bus, addr uint16, c Config, sleep func(time.Duration)) (*Dev, error) {
	w, err := c.word()
	if err != nil {
		return nil, err
	}
	if _, err := ReadConfig(bus, addr); err != nil {
		return nil, err
	}
	return &Dev{d: i2c.Dev{Bus: bus, Addr: addr}, cfg: c, word: w, sleep: sleep}, nil
}

// ReadConfig reads the config register of the device at addr.
func ReadConfig(bus i2c.Bus, addr uint16) (uint16, error) {
	var r [2]byte
	if err := bus.Tx(addr, []byte{regConfig}, r[:]); err != nil {
		return 0, fmt.Errorf("ads1115: read config at 0x%02x: %w", addr, err)
	}
	return uint16(r[0])<<8 | uint16(r[1]), nil
}

// String names the device, its address and input.
func (d *Dev) String() string {
	return fmt.Sprintf("ADS1115 at 0x%02x (%s, ±%s V)", d.d.Addr, d.cfg.Mux, d.cfg.Gain)
}

// errBusy is returned when a conversion does not finish in time.
var errBusy = errors.New("ads1115: conversion did not finish")

// Sense runs one single-shot conversion and returns it. It takes a little more than
// one sample period (8 ms at 128 samples per second).
func (d *Dev) Sense() (Measurement, error) {
	if err := d.d.Tx([]byte{regConfig, byte(d.word >> 8), byte(d.word)}, nil); err != nil {
		return Measurement{}, fmt.Errorf("ads1115: start conversion: %w", err)
	}
	// A conversion takes one sample period; the oscillator may be 10 % slow (§7.5).
	period := time.Second / time.Duration(d.cfg.DataRate)
	d.sleep(period + period/10 + 100*time.Microsecond)
	var r [2]byte
	for i := 0; ; i++ {
		if err := d.d.Tx([]byte{regConfig}, r[:]); err != nil {
			return Measurement{}, fmt.Errorf("ads1115: read config: %w", err)
		}
		if r[0]&(cfgOS>>8) != 0 {
			break
		}
		if i == 10 {
			return Measurement{}, errBusy
		}
		d.sleep(period/10 + 100*time.Microsecond)
	}
	if err := d.d.Tx([]byte{regConversion}, r[:]); err != nil {
		return Measurement{}, fmt.Errorf("ads1115: read conversion: %w", err)
	}
	return Measurement{Raw: int16(uint16(r[0])<<8 | uint16(r[1])), Gain: d.cfg.Gain}, nil
}

// Measurement is one conversion result.
type Measurement struct {
	Raw  int16 // the conversion register: two's complement, full scale at ±32768
	Gain Gain  // the range it was taken with
}

// Volts returns the input voltage, Raw · FSR / 2¹⁵ (data sheet §9.3.3, Table 3): one
// step is 187.5 µV at ±6.144 V and 62.5 µV at ±2.048 V.
func (m Measurement) Volts() float64 {
	return float64(int64(m.Raw)*fullScale[m.Gain]) / 32768 / 1000
}
