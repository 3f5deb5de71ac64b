package bme280

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// example is the BMP280 data sheet's worked example (BST-BMP280-DS001 §3.12,
// "Calculating pressure and temperature"): its trimming parameters and raw readings,
// and the results it gives: t_fine = 128422, T = 25.08 °C, p = 100653.27 Pa (the
// latter from the floating-point formula).
var example = Calibration{
	T1: 27504, T2: 26435, T3: -1000,
	P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
}

const (
	exampleAdcT  = 519888
	exampleAdcP  = 415148
	exampleTFine = 128422
	exampleT     = 2508      // 0.01 °C
	exampleP     = 100653.27 // Pa
)

// humidityCal are plausible BME280 humidity parameters (the data sheet gives no
// humidity example); H4 and H5 are negative to exercise the nibble packing.
var humidityCal = Calibration{H1: 75, H2: 362, H3: 0, H4: 313, H5: -50, H6: 30}

func TestCompensateDatasheetExample(t *testing.T) {
	centi, tFine := example.CompensateT(exampleAdcT)
	if tFine != exampleTFine || centi != exampleT {
		t.Errorf("CompensateT(%d) = %d, t_fine %d; want %d, t_fine %d", exampleAdcT, centi, tFine, exampleT, exampleTFine)
	}
	p := example.CompensateP(exampleAdcP, tFine)
	if got := float64(p) / 256; math.Abs(got-exampleP) > 0.05 {
		t.Errorf("CompensateP(%d) = %d/256 = %.3f Pa, want %.2f Pa within 0.05", exampleAdcP, p, got, exampleP)
	}
	m := Measurement{Temperature: centi, Pressure: p}
	if m.Celsius() != 25.08 || m.HectoPascal() != 1006.53 {
		t.Errorf("Celsius() = %v, HectoPascal() = %v; want 25.08, 1006.53", m.Celsius(), m.HectoPascal())
	}
}

// floatH is the data sheet's floating-point humidity formula (BME280 §8.1), the
// reference the integer formula must agree with.
func floatH(c Calibration, adcH float64, tFine float64) float64 {
	h := tFine - 76800
	h = (adcH - (float64(c.H4)*64 + float64(c.H5)/16384*h)) *
		(float64(c.H2) / 65536 * (1 + float64(c.H6)/67108864*h*(1+float64(c.H3)/67108864*h)))
	h = h * (1 - float64(c.H1)*h/524288)
	return min(max(h, 0), 100)
}

func TestCompensateHumidityAgreesWithFloat(t *testing.T) {
	for _, tFine := range []int32{exampleTFine, 76800, 51200, 153600} {
		for _, adcH := range []int32{20000, 26000, 30000, 36000, 40000} {
			got := float64(humidityCal.CompensateH(adcH, tFine)) / 1024
			want := floatH(humidityCal, float64(adcH), float64(tFine))
			if math.Abs(got-want) > 0.05 {
				t.Errorf("CompensateH(%d, t_fine %d) = %.3f %%RH, float formula %.3f", adcH, tFine, got, want)
			}
		}
	}
	if got := humidityCal.CompensateH(0, exampleTFine); got != 0 {
		t.Errorf("CompensateH(0) = %d, want clamped to 0", got)
	}
	if got := humidityCal.CompensateH(65535, exampleTFine); got != 100<<10 {
		t.Errorf("CompensateH(65535) = %d, want clamped to 100 %%RH (%d)", got, 100<<10)
	}
}

// calibRegisters encodes c as the chip stores it in 0x88…0xA1 and 0xE1…0xE7.
func calibRegisters(c Calibration) (c1 [26]byte, c2 [7]byte) {
	le := binary.LittleEndian
	for i, v := range []uint16{c.T1, uint16(c.T2), uint16(c.T3), c.P1, uint16(c.P2), uint16(c.P3), uint16(c.P4),
		uint16(c.P5), uint16(c.P6), uint16(c.P7), uint16(c.P8), uint16(c.P9)} {
		le.PutUint16(c1[2*i:], v)
	}
	c1[25] = c.H1
	le.PutUint16(c2[0:], uint16(c.H2))
	c2[2] = c.H3
	c2[3] = byte(c.H4 >> 4)
	c2[4] = byte(c.H4&0x0F) | byte(c.H5&0x0F)<<4
	c2[5] = byte(c.H5 >> 4)
	c2[6] = byte(c.H6)
	return c1, c2
}

func TestParseCalibration(t *testing.T) {
	want := example
	want.H1, want.H2, want.H3, want.H4, want.H5, want.H6 = 75, -362, 0, -313, 50, -30
	c1, c2 := calibRegisters(want)
	if got := ParseCalibration(c1, c2); got != want {
		t.Errorf("ParseCalibration() = %+v, want %+v", got, want)
	}
}

// rawData encodes 20-bit pressure and temperature and 16-bit humidity results as the
// data registers 0xF7…0xFE hold them.
func rawData(adcP, adcT, adcH int32) []byte {
	return []byte{byte(adcP >> 12), byte(adcP >> 4), byte(adcP << 4), byte(adcT >> 12), byte(adcT >> 4), byte(adcT << 4),
		byte(adcH >> 8), byte(adcH)}
}

// openOps are the transactions of New for a chip with the given id and calibration.
func openOps(addr uint16, id byte, c Calibration) []i2ctest.IO {
	c1, c2 := calibRegisters(c)
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{regChipID}, R: []byte{id}},
		{Addr: addr, W: []byte{regReset, resetWord}},
		{Addr: addr, W: []byte{regStatus}, R: []byte{statusImUpdate}}, // still copying NVM
		{Addr: addr, W: []byte{regStatus}, R: []byte{0}},
		{Addr: addr, W: []byte{regCalib00}, R: c1[:]},
	}
	if Chip(id) == BME280 {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{regCalib26}, R: c2[:]})
	}
	return ops
}

func TestSenseBME280(t *testing.T) {
	cal := example
	cal.H1, cal.H2, cal.H3, cal.H4, cal.H5, cal.H6 = humidityCal.H1, humidityCal.H2, humidityCal.H3, humidityCal.H4, humidityCal.H5, humidityCal.H6
	const adcH = 30000
	ops := append(openOps(AddrLow, 0x60, cal),
		i2ctest.IO{Addr: AddrLow, W: []byte{regCtrlHum, 0x01}},
		i2ctest.IO{Addr: AddrLow, W: []byte{regCtrlMeas, 0x25}},
		i2ctest.IO{Addr: AddrLow, W: []byte{regStatus}, R: []byte{statusMeasuring}},
		i2ctest.IO{Addr: AddrLow, W: []byte{regStatus}, R: []byte{0}},
		i2ctest.IO{Addr: AddrLow, W: []byte{regData}, R: rawData(exampleAdcP, exampleAdcT, adcH)},
	)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	var slept time.Duration
	d, err := newDev(bus, AddrLow, func(d time.Duration) { slept += d })
	if err != nil {
		t.Fatal(err)
	}
	if d.Chip() != BME280 || d.String() != "BME280 at 0x76" {
		t.Errorf("Chip() = %v, String() = %q", d.Chip(), d)
	}
	m, err := d.Sense()
	if err != nil {
		t.Fatal(err)
	}
	wantH := floatH(cal, adcH, exampleTFine)
	if m.Celsius() != 25.08 || m.HectoPascal() != 1006.53 || !m.HasHumidity || math.Abs(m.Percent()-wantH) > 0.05 {
		t.Errorf("Sense() = %.2f °C, %.2f hPa, %.2f %%RH (%v); want 25.08 °C, 1006.53 hPa, %.2f %%RH",
			m.Celsius(), m.HectoPascal(), m.Percent(), m.HasHumidity, wantH)
	}
	if slept < measureTime {
		t.Errorf("slept %v, want at least the measurement time %v", slept, measureTime)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestSenseBMP280(t *testing.T) {
	ops := append(openOps(AddrHigh, 0x58, example),
		i2ctest.IO{Addr: AddrHigh, W: []byte{regCtrlMeas, 0x25}},
		i2ctest.IO{Addr: AddrHigh, W: []byte{regStatus}, R: []byte{0}},
		i2ctest.IO{Addr: AddrHigh, W: []byte{regData}, R: rawData(exampleAdcP, exampleAdcT, 0)[:6]},
	)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	d, err := newDev(bus, AddrHigh, func(time.Duration) {})
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Sense()
	if err != nil {
		t.Fatal(err)
	}
	if d.Chip() != BMP280 || m.HasHumidity || m.Celsius() != 25.08 || m.HectoPascal() != 1006.53 {
		t.Errorf("%v: Sense() = %+v", d.Chip(), m)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestSenseErrors(t *testing.T) {
	t.Run("wrong chip", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: AddrLow, W: []byte{regChipID}, R: []byte{0x61}}}, DontPanic: true}
		_, err := newDev(bus, AddrLow, func(time.Duration) {})
		if !errors.Is(err, ErrChip) {
			t.Errorf("New() error = %v, want ErrChip", err)
		}
	})
	t.Run("no device", func(t *testing.T) {
		bus := &i2ctest.Playback{DontPanic: true} // every transaction fails, as a NACK would
		if _, err := newDev(bus, AddrLow, func(time.Duration) {}); err == nil {
			t.Error("New() on an empty bus succeeded")
		}
	})
	t.Run("skipped measurement", func(t *testing.T) {
		ops := append(openOps(AddrHigh, 0x58, example),
			i2ctest.IO{Addr: AddrHigh, W: []byte{regCtrlMeas, 0x25}},
			i2ctest.IO{Addr: AddrHigh, W: []byte{regStatus}, R: []byte{0}},
			i2ctest.IO{Addr: AddrHigh, W: []byte{regData}, R: rawData(skipped, skipped, 0)[:6]},
		)
		d, err := newDev(&i2ctest.Playback{Ops: ops, DontPanic: true}, AddrHigh, func(time.Duration) {})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Sense(); err == nil {
			t.Error("Sense() of 0x80000 registers succeeded")
		}
	})
	t.Run("stays busy", func(t *testing.T) {
		ops := openOps(AddrHigh, 0x58, example)
		ops = append(ops, i2ctest.IO{Addr: AddrHigh, W: []byte{regCtrlMeas, 0x25}})
		for range 20 {
			ops = append(ops, i2ctest.IO{Addr: AddrHigh, W: []byte{regStatus}, R: []byte{statusMeasuring}})
		}
		d, err := newDev(&i2ctest.Playback{Ops: ops, DontPanic: true}, AddrHigh, func(time.Duration) {})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Sense(); err == nil {
			t.Error("Sense() of a chip that stays busy succeeded")
		}
	})
}
