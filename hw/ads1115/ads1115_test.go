package ads1115

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

func TestVolts(t *testing.T) {
	// Data sheet §9.3.3, Table 3: code 0x7FFF is +FS·(2¹⁵-1)/2¹⁵, 0x8000 is -FS, one
	// LSB is FS/2¹⁵.
	tests := []struct {
		gain Gain
		raw  int16
		want float64
	}{
		{FSR6144, 1, 187.5e-6},
		{FSR4096, 1, 125e-6},
		{FSR2048, 1, 62.5e-6},
		{FSR1024, 1, 31.25e-6},
		{FSR0512, 1, 15.625e-6},
		{FSR0256, 1, 7.8125e-6},
		{FSR2048, 0x7FFF, 2.048 * 32767 / 32768},
		{FSR2048, -0x8000, -2.048},
		{FSR4096, 0x4000, 2.048},
		{FSR0256, -1, -7.8125e-6},
		{FSR6144, 0, 0},
	}
	for _, tt := range tests {
		if got := (Measurement{Raw: tt.raw, Gain: tt.gain}).Volts(); got != tt.want {
			t.Errorf("Measurement{%d, ±%s V}.Volts() = %v, want %v", tt.raw, tt.gain, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	for i, s := range []string{"ain0-ain1", "AIN0-AIN3", "ain1-ain3", "ain2-ain3", "ain0", "ain1", "ain2", "Ain3"} {
		m, err := ParseMux(s)
		if err != nil || m != Mux(i) {
			t.Errorf("ParseMux(%q) = %v, %v; want %v", s, m, err, Mux(i))
		}
	}
	for _, s := range []string{"", "a0", "ain4", "ain1-ain0"} {
		if _, err := ParseMux(s); err == nil {
			t.Errorf("ParseMux(%q) succeeded", s)
		}
	}
	for s, want := range map[string]Gain{"6.144": FSR6144, "4.096V": FSR4096, "2.048": FSR2048, "1.024": FSR1024, "0.512": FSR0512, ".256": FSR0256} {
		if g, err := ParseGain(s); err != nil || g != want {
			t.Errorf("ParseGain(%q) = %v, %v; want %v", s, g, err, want)
		}
		if g, err := ParseGain(want.String()); err != nil || g != want {
			t.Errorf("ParseGain(%v.String()) = %v, %v", want, g, err)
		}
	}
	for _, s := range []string{"", "2", "1", "x"} {
		if _, err := ParseGain(s); err == nil {
			t.Errorf("ParseGain(%q) succeeded", s)
		}
	}
}

func TestConfigWord(t *testing.T) {
	// The reset value 0x8583 is DefaultConfig with OS set and the comparator off.
	tests := []struct {
		c    Config
		want uint16
	}{
		{DefaultConfig, 0x8583},
		{Config{Mux: AIN0, Gain: FSR4096, DataRate: 860}, 0xC3E3},
		{Config{Mux: AIN3, Gain: FSR0256, DataRate: 8}, 0xFB03},
	}
	for _, tt := range tests {
		if got, err := tt.c.word(); err != nil || got != tt.want {
			t.Errorf("%+v.word() = 0x%04x, %v; want 0x%04x", tt.c, got, err, tt.want)
		}
	}
	if _, err := (Config{DataRate: 100}).word(); err == nil {
		t.Error("data rate 100 accepted")
	}
}

func TestSense(t *testing.T) {
	const addr = AddrGND
	c := Config{Mux: AIN1, Gain: FSR4096, DataRate: 128}
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{regConfig}, R: []byte{0x85, 0x83}},
		{Addr: addr, W: []byte{regConfig, 0xD3, 0x83}},            // OS, AIN1-GND, ±4.096 V, single, 128 SPS
		{Addr: addr, W: []byte{regConfig}, R: []byte{0x53, 0x83}}, // still converting
		{Addr: addr, W: []byte{regConfig}, R: []byte{0xD3, 0x83}}, // done
		{Addr: addr, W: []byte{regConversion}, R: []byte{0x4E, 0x20}},
	}
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	var slept time.Duration
	d, err := newDev(bus, addr, c, func(d time.Duration) { slept += d })
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Sense()
	if err != nil {
		t.Fatal(err)
	}
	// 0x4E20 = 20000 steps of 125 µV.
	if m.Raw != 20000 || m.Volts() != 2.5 {
		t.Errorf("Sense() = %+v, %v V; want 20000, 2.5 V", m, m.Volts())
	}
	if slept < time.Second/128 {
		t.Errorf("slept %v, want at least one sample period", slept)
	}
	if d.String() != "ADS1115 at 0x48 (ain1, ±4.096 V)" {
		t.Errorf("String() = %q", d)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestSenseBusy(t *testing.T) {
	ops := []i2ctest.IO{
		{Addr: AddrVDD, W: []byte{regConfig}, R: []byte{0x85, 0x83}},
		{Addr: AddrVDD, W: []byte{regConfig, 0x85, 0x83}},
	}
	for range 11 {
		ops = append(ops, i2ctest.IO{Addr: AddrVDD, W: []byte{regConfig}, R: []byte{0x05, 0x83}})
	}
	d, err := newDev(&i2ctest.Playback{Ops: ops, DontPanic: true}, AddrVDD, DefaultConfig, func(time.Duration) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sense(); err != errBusy {
		t.Errorf("Sense() error = %v, want %v", err, errBusy)
	}
}
