package sht3x

import (
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

func TestCRC8(t *testing.T) {
	// The data sheet's example (§4.12, Table 20): CRC(0xBEEF) = 0x92.
	if got := CRC8([]byte{0xBE, 0xEF}); got != 0x92 {
		t.Errorf("CRC8(0xBEEF) = 0x%02x, want 0x92", got)
	}
	if got := CRC8(nil); got != 0xFF {
		t.Errorf("CRC8() = 0x%02x, want the initialisation 0xFF", got)
	}
}

func TestConversion(t *testing.T) {
	// Data sheet §4.13: T = -45 + 175·S_T/65535, RH = 100·S_RH/65535.
	tests := []struct {
		rawT, rawRH uint16
		c, rh       float64
	}{
		{0x0000, 0x0000, -45, 0},
		{0xFFFF, 0xFFFF, 130, 100},
		{0x6666, 0x8000, 25, 50},    // 175·0.4 - 45; 100·32768/65535 = 50.0008
		{0x4000, 0x4000, -1.25, 25}, // -45 + 43.7507 = -1.2493; 25.0004
		{0x5EB8, 0x7AE1, 19.75, 48}, // -45 + 64.7508 = 19.7508; 48.0003
	}
	for _, tt := range tests {
		m := Measurement{RawT: tt.rawT, RawRH: tt.rawRH}
		if m.Celsius() != tt.c || m.Percent() != tt.rh {
			t.Errorf("Measurement{0x%04x, 0x%04x} = %v °C, %v %%RH; want %v, %v", tt.rawT, tt.rawRH, m.Celsius(), m.Percent(), tt.c, tt.rh)
		}
	}
}

// word returns a big-endian word followed by its checksum, as the sensor sends it.
func word(v uint16) []byte {
	b := []byte{byte(v >> 8), byte(v)}
	return append(b, CRC8(b))
}

func openOps(addr uint16) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: cmdReadStatus, R: word(0x8010)}, // alert pending, reset detected
		{Addr: addr, W: cmdClearStatus},
	}
}

func TestSense(t *testing.T) {
	ops := append(openOps(AddrLow),
		i2ctest.IO{Addr: AddrLow, W: cmdMeasureHigh},
		i2ctest.IO{Addr: AddrLow, R: append(word(0x6666), word(0x8000)...)},
	)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	var slept time.Duration
	d, err := newDev(bus, AddrLow, func(d time.Duration) { slept += d })
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Sense()
	if err != nil {
		t.Fatal(err)
	}
	if m.Celsius() != 25 || m.Percent() != 50 || d.String() != "SHT3x at 0x44" {
		t.Errorf("%v: Sense() = %v °C, %v %%RH; want 25, 50", d, m.Celsius(), m.Percent())
	}
	if slept < 15500*time.Microsecond {
		t.Errorf("slept %v, want at least 15.5 ms (high repeatability)", slept)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestSenseCRCError(t *testing.T) {
	bad := append(word(0x6666), word(0x8000)...)
	bad[5] ^= 0x01 // humidity checksum
	ops := append(openOps(AddrHigh),
		i2ctest.IO{Addr: AddrHigh, W: cmdMeasureHigh},
		i2ctest.IO{Addr: AddrHigh, R: bad},
	)
	d, err := newDev(&i2ctest.Playback{Ops: ops, DontPanic: true}, AddrHigh, func(time.Duration) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sense(); !errors.Is(err, ErrCRC) {
		t.Errorf("Sense() error = %v, want ErrCRC", err)
	}
}

func TestStatusCRCError(t *testing.T) {
	st := word(0x8010)
	st[2] ^= 0xFF
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: AddrLow, W: cmdReadStatus, R: st}}, DontPanic: true}
	if _, err := newDev(bus, AddrLow, func(time.Duration) {}); !errors.Is(err, ErrCRC) {
		t.Errorf("New() error = %v, want ErrCRC", err)
	}
}

func TestSenseNotReady(t *testing.T) {
	// The first read is not acknowledged (playback: a mismatching transaction fails
	// like a NACK), the second one after another wait is.
	ops := append(openOps(AddrLow),
		i2ctest.IO{Addr: AddrLow, W: cmdMeasureHigh},
		i2ctest.IO{Addr: AddrLow, R: append(word(0x6666), word(0x8000)...)},
	)
	bus := &notReady{Playback: i2ctest.Playback{Ops: ops, DontPanic: true}, fail: 1}
	d, err := newDev(bus, AddrLow, func(time.Duration) {})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := d.Sense(); err != nil || m.Celsius() != 25 {
		t.Errorf("Sense() = %+v, %v", m, err)
	}
}

// notReady fails the first fail reads without a write, as a sensor still measuring
// does.
type notReady struct {
	i2ctest.Playback
	fail int
}

func (n *notReady) Tx(addr uint16, w, r []byte) error {
	if len(w) == 0 && n.fail > 0 {
		n.fail--
		return errors.New("remote I/O error")
	}
	return n.Playback.Tx(addr, w, r)
}
