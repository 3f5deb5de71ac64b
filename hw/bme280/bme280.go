// Package bme280 drives the Bosch BME280 (temperature, pressure, humidity) and BMP280
// (temperature, pressure) over I²C, in forced mode: each Sense starts one measurement
// and reads it, and the chip sleeps in between, the mode the data sheets recommend for
// weather monitoring (BME280 data sheet BST-BME280-DS002 §3.5.1: forced mode, 1×
// oversampling, filter off).
//
// Readings are compensated with the data sheets' integer formulas (BME280 §4.2.3,
// BMP280 §3.11.3): temperature in 0.01 °C, pressure from the 64-bit formula in Q24.8 Pa,
// humidity in Q22.10 %RH. The trimming parameters are read once, by New.
//
// A Dev is not safe for concurrent use. It does not own the bus.
package bme280

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// I²C addresses (data sheet §6.2): the SDO pin selects the lowest bit.
const (
	AddrLow  uint16 = 0x76 // SDO to GND
	AddrHigh uint16 = 0x77 // SDO to VDDIO
)

// Chip is the model found by New, from the chip-id register.
type Chip uint8

// Chip identifiers as read from register 0xD0 (BME280 §5.4.1, BMP280 §4.3.1). BMP280
// engineering samples answered 0x56 or 0x57; New accepts them as a BMP280.
const (
	BMP280 Chip = 0x58
	BME280 Chip = 0x60
)

// String returns the model name.
func (c Chip) String() string {
	switch c {
	case BME280:
		return "BME280"
	case BMP280, 0x56, 0x57:
		return "BMP280"
	}
	return fmt.Sprintf("chip 0x%02x", uint8(c))
}

// HasHumidity reports whether the chip measures humidity.
func (c Chip) HasHumidity() bool { return c == BME280 }

// Register map (BME280 §5.3, BMP280 §4.2).
const (
	regCalib00  = 0x88 // 0x88…0xA1: dig_T1…dig_P9, reserved, dig_H1
	regChipID   = 0xD0
	regReset    = 0xE0
	regCalib26  = 0xE1 // 0xE1…0xE7: dig_H2…dig_H6 (BME280 only)
	regCtrlHum  = 0xF2
	regStatus   = 0xF3
	regCtrlMeas = 0xF4
	regData     = 0xF7 // press[3], temp[3], hum[2]

	resetWord = 0xB6

	statusMeasuring = 1 << 3
	statusImUpdate  = 1 << 0

	// ctrl_meas: osrs_t = 1× (001) in bits 7:5, osrs_p = 1× (001) in bits 4:2, mode
	// forced (01) in bits 1:0. ctrl_hum: osrs_h = 1×.
	ctrlMeasForced1x = 1<<5 | 1<<2 | 1
	ctrlHum1x        = 1

	// skipped is what a 20-bit result register holds when the measurement was skipped
	// or never ran; a 16-bit humidity register holds skippedHum.
	skipped    = 0x80000
	skippedHum = 0x8000
)

// measureTime is the longest a forced measurement with 1× oversampling of all three
// quantities takes: BME280 §9.1, 1.25 + 2.3·1 + (2.3·1 + 0.575) + (2.3·1 + 0.575) ms,
// rounded up. The BMP280's is shorter (BMP280 §3.8.1: 6.4 ms).
const measureTime = 10 * time.Millisecond

// ErrChip is wrapped by New's error when the chip-id register names no supported chip.
var ErrChip = errors.New("not a BME280 or BMP280")

// Dev is one BME280 or BMP280 on an I²C bus.
type Dev struct {
	d     i2c.Dev
	chip  Chip
	cal   Calibration
	sleep func(time.Duration)
}

// New checks the chip-id register of the chip at addr, resets the chip (it sleeps
// after that) and reads its trimming parameters. It fails with an error wrapping
// ErrChip if the chip is neither a BME280 nor a BMP280.
func New(bus i2c.Bus, addr uint16) (*Dev, error) {
	return newDev(bus, addr, time.Sleep)
}

func newDev(bus i2c.Bus, addr uint16, sleep func(time.Duration)) (*Dev, error) {
	d := &Dev{d: i2c.Dev{Bus: bus, Addr: addr}, sleep: sleep}
	id, err := ReadChipID(bus, addr)
	if err != nil {
		return nil, err
	}
	switch id {
	case BME280, BMP280:
		d.chip = id
	case 0x56, 0x57:
		d.chip = BMP280
	default:
		return nil, fmt.Errorf("bme280: chip id 0x%02x at 0x%02x: %w", uint8(id), addr, ErrChip)
	}
	if err := d.d.Tx([]byte{regReset, resetWord}, nil); err != nil {
		return nil, fmt.Errorf("bme280: reset: %w", err)
	}
	// After a reset the chip copies its NVM into the image registers (start-up time 2
	// ms, §1.1); im_update is set while it does.
	if err := d.wait(statusImUpdate, 2*time.Millisecond); err != nil {
		return nil, err
	}
	var c1 [26]byte
	if err := d.d.Tx([]byte{regCalib00}, c1[:]); err != nil {
		return nil, fmt.Errorf("bme280: read calibration: %w", err)
	}
	var c2 [7]byte
	if d.chip.HasHumidity() {
		if err := d.d.Tx([]byte{regCalib26}, c2[:]); err != nil {
			return nil, fmt.Errorf("bme280: read humidity calibration: %w", err)
		}
	}
	d.cal = ParseCalibration(c1, c2)
	return d, nil
}

// ReadChipID reads the chip-id register (0xD0) of the device at addr, as `shadowgw
// sensors scan` does to name it.
func ReadChipID(bus i2c.Bus, addr uint16) (Chip, error) {
	var id [1]byte
	if err := bus.Tx(addr, []byte{regChipID}, id[:]); err != nil {
		return 0, fmt.Errorf("bme280: read chip id at 0x%02x: %w", addr, err)
	}
	return Chip(id[0]), nil
}

// Chip returns the model New found.
func (d *Dev) Chip() Chip { return d.chip }

// Calibration returns the trimming parameters New read.
func (d *Dev) Calibration() Calibration { return d.cal }

// String names the chip and its address.
func (d *Dev) String() string { return fmt.Sprintf("%s at 0x%02x", d.chip, d.d.Addr) }

// Sense runs one forced measurement and returns it compensated. It takes about 10 ms.
func (d *Dev) Sense() (Measurement, error) {
	if d.chip.HasHumidity() {
		// ctrl_hum takes effect only with the next write to ctrl_meas (§5.4.3).
		if err := d.d.Tx([]byte{regCtrlHum, ctrlHum1x}, nil); err != nil {
			return Measurement{}, fmt.Errorf("bme280: write ctrl_hum: %w", err)
		}
	}
	if err := d.d.Tx([]byte{regCtrlMeas, ctrlMeasForced1x}, nil); err != nil {
		return Measurement{}, fmt.Errorf("bme280: start measurement: %w", err)
	}
	d.sleep(measureTime)
	if err := d.wait(statusMeasuring, time.Millisecond); err != nil {
		return Measurement{}, err
	}
	n := 6
	if d.chip.HasHumidity() {
		n = 8
	}
	var raw [8]byte
	if err := d.d.Tx([]byte{regData}, raw[:n]); err != nil {
		return Measurement{}, fmt.Errorf("bme280: read data: %w", err)
	}
	adcP := int32(raw[0])<<12 | int32(raw[1])<<4 | int32(raw[2])>>4
	adcT := int32(raw[3])<<12 | int32(raw[4])<<4 | int32(raw[5])>>4
	if adcT == skipped || adcP == skipped {
		return Measurement{}, errors.New("bme280: no measurement result (registers read 0x80000)")
	}
	m := Measurement{}
	var tFine int32
	m.Temperature, tFine = d.cal.CompensateT(adcT)
	m.Pressure = d.cal.CompensateP(adcP, tFine)
	if d.chip.HasHumidity() {
		adcH := int32(raw[6])<<8 | int32(raw[7])
		if adcH == skippedHum {
			return Measurement{}, errors.New("bme280: no humidity result (registers read 0x8000)")
		}
		m.Humidity = d.cal.CompensateH(adcH, tFine)
		m.HasHumidity = true
	}
	return m, nil
}

// wait polls the status register until the bits in mask are clear, sleeping step
// between reads, for at most 20 reads.
func (d *Dev) wait(mask byte, step time.Duration) error {
	var st [1]byte
	for range 20 {
		if err := d.d.Tx([]byte{regStatus}, st[:]); err != nil {
			return fmt.Errorf("bme280: read status: %w", err)
		}
		if st[0]&mask == 0 {
			return nil
		}
		d.sleep(step)
	}
	return fmt.Errorf("bme280: status 0x%02x: chip stays busy", st[0])
}

// Measurement is one compensated reading.
type Measurement struct {
	Temperature int32  // 0.01 °C: 5123 is 51.23 °C
	Pressure    uint32 // Pa in Q24.8: 24674867 is 24674867/256 = 96386.2 Pa; 0 if invalid
	Humidity    uint32 // %RH in Q22.10: 47445 is 47445/1024 = 46.333 %RH
	HasHumidity bool   // Humidity is set (BME280)
}

// Celsius returns the temperature in °C, to 0.01 °C.
func (m Measurement) Celsius() float64 { return float64(m.Temperature) / 100 }

// HectoPascal returns the pressure in hPa, rounded to 0.01 hPa (1 Pa).
func (m Measurement) HectoPascal() float64 {
	return float64((m.Pressure+128)>>8) / 100
}

// Percent returns the relative humidity in %RH, rounded to 0.01 %RH.
func (m Measurement) Percent() float64 {
	return float64((uint64(m.Humidity)*100+512)>>10) / 100
}

// Calibration holds the trimming parameters dig_T1…dig_H6 (BME280 §4.2.2 Table 16,
// BMP280 §3.11.2 Table 17).
type Calibration struct {
	T1             uint16
	T2, T3         int16
	P1             uint16
	P2, P3, P4, P5 int16
	P6, P7, P8, P9 int16
	H1             uint8
	H2             int16
	H3             uint8
	H4, H5         int16 // 12-bit signed values packed in 0xE4…0xE6
	H6             int8
}

// ParseCalibration decodes the trimming registers: c1 from 0x88…0xA1, c2 from
// 0xE1…0xE7 (zero for a BMP280). Words are little-endian.
func ParseCalibration(c1 [26]byte, c2 [7]byte) Calibration {
	u := func(i int) uint16 { return binary.LittleEndian.Uint16(c1[i:]) }
	s := func(i int) int16 { return int16(u(i)) }
	return Calibration{
		T1: u(0), T2: s(2), T3: s(4),
		P1: u(6), P2: s(8), P3: s(10), P4: s(12), P5: s(14), P6: s(16), P7: s(18), P8: s(20), P9: s(22),
		H1: c1[25],
		H2: int16(binary.LittleEndian.Uint16(c2[0:])),
		H3: c2[2],
		// dig_H4 is 0xE4 (bits 11:4, signed) and the low nibble of 0xE5 (bits 3:0);
		// dig_H5 is 0xE6 (bits 11:4, signed) and the high nibble of 0xE5 (bits 3:0).
		H4: int16(int8(c2[3]))<<4 | int16(c2[4]&0x0F),
		H5: int16(int8(c2[5]))<<4 | int16(c2[4]>>4),
		H6: int8(c2[6]),
	}
}

// CompensateT returns the temperature in 0.01 °C for the raw 20-bit adcT, and t_fine,
// the fine temperature the other two formulas take (BME280 §4.2.3, 32-bit integer).
func (c Calibration) CompensateT(adcT int32) (centi int32, tFine int32) {
	t1, t2, t3 := int32(c.T1), int32(c.T2), int32(c.T3)
	var1 := (((adcT >> 3) - t1<<1) * t2) >> 11
	d := (adcT >> 4) - t1
	var2 := (((d * d) >> 12) * t3) >> 14
	tFine = var1 + var2
	return (tFine*5 + 128) >> 8, tFine
}

// CompensateP returns the pressure in Pa as Q24.8 for the raw 20-bit adcP (BME280
// §4.2.3, 64-bit integer), or 0 when the calibration would divide by zero.
func (c Calibration) CompensateP(adcP, tFine int32) uint32 {
	var1 := int64(tFine) - 128000
	var2 := var1 * var1 * int64(c.P6)
	var2 += (var1 * int64(c.P5)) << 17
	var2 += int64(c.P4) << 35
	var1 = (var1*var1*int64(c.P3))>>8 + (var1*int64(c.P2))<<12
	var1 = ((int64(1)<<47 + var1) * int64(c.P1)) >> 33
	if var1 == 0 {
		return 0
	}
	p := 1048576 - int64(adcP)
	p = ((p<<31 - var2) * 3125) / var1
	var1 = (int64(c.P9) * (p >> 13) * (p >> 13)) >> 25
	var2 = (int64(c.P8) * p) >> 19
	p = (p+var1+var2)>>8 + int64(c.P7)<<4
	return uint32(p)
}

// CompensateH returns the relative humidity in %RH as Q22.10 for the raw 16-bit adcH
// (BME280 §4.2.3, 32-bit integer), clamped to 0…100 %RH.
func (c Calibration) CompensateH(adcH, tFine int32) uint32 {
	h1, h2, h3 := int32(c.H1), int32(c.H2), int32(c.H3)
	h4, h5, h6 := int32(c.H4), int32(c.H5), int32(c.H6)
	v := tFine - 76800
	v = ((((adcH << 14) - h4<<20 - h5*v) + 16384) >> 15) *
		(((((((v*h6)>>10)*(((v*h3)>>11)+32768))>>10)+2097152)*h2 + 8192) >> 14)
	v -= ((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4
	v = max(v, 0)
	v = min(v, 419430400)
	return uint32(v >> 12)
}
