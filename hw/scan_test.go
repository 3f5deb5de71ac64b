package hw

import (
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

func TestScanI2C(t *testing.T) {
	// Playback answers the transactions listed, in order; a probe of any other
	// address fails as a NACK does.
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x44, W: []byte{0xF3, 0x2D}, R: shtWord(0x8010)},
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0x85, 0x83}},
		{Addr: 0x4A, W: []byte{0x01}, R: []byte{0xC3, 0xE3}},
		{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x60}},
		{Addr: 0x77, W: []byte{0xD0}, R: []byte{0x58}},
	}}
	got := ScanI2C(bus)
	want := []Found{
		{0x44, SHT3x, "SHT3x", "status register 0x8010, CRC valid"},
		{0x48, ADS1115, "ADS1115", "config register 0x8583, its power-on value"},
		{0x4A, ADS1115, "ADS1115?", "config register 0xc3e3: configured since power-on, or another chip"},
		{0x76, BME280, "BME280", "chip id 0x60"},
		{0x77, BMP280, "BMP280", "chip id 0x58"},
	}
	if len(got) != len(want) {
		t.Fatalf("ScanI2C() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("found[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}

	// An SHT3x answer with a bad CRC is not named.
	bad := shtWord(0x8010)
	bad[2] ^= 1
	if got := ScanI2C(&i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x45, W: []byte{0xF3, 0x2D}, R: bad}}}); len(got) != 0 {
		t.Errorf("ScanI2C(bad CRC) = %+v", got)
	}
}
