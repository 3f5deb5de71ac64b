package hw

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/shadowgw/shadowgw/hw/sht3x"
	"github.com/shadowgw/shadowgw/store"
)

// shtWord is a word followed by its CRC, as an SHT3x sends it.
func shtWord(v uint16) []byte {
	b := []byte{byte(v >> 8), byte(v)}
	return append(b, sht3x.CRC8(b))
}

// shtOps are the transactions of opening an SHT3x at 0x44 and taking one measurement
// per element of reads (6 bytes each).
func shtOps(reads ...[]byte) []i2ctest.IO {
	ops := []i2ctest.IO{
		{Addr: 0x44, W: []byte{0xF3, 0x2D}, R: shtWord(0)},
		{Addr: 0x44, W: []byte{0x30, 0x41}},
	}
	for _, r := range reads {
		ops = append(ops, i2ctest.IO{Addr: 0x44, W: []byte{0x24, 0x00}}, i2ctest.IO{Addr: 0x44, R: r})
	}
	return ops
}

// closeCounter is a playback bus that counts Close calls.
type closeCounter struct {
	*i2ctest.Playback
	closes *atomic.Int32
}

func (c closeCounter) Close() error { c.closes.Add(1); return nil }

func TestPolledMissingThenFlaky(t *testing.T) {
	good := append(shtWord(0x6666), shtWord(0x8000)...) // 25 °C, 50 %RH
	badCRC := slices.Clone(good)
	badCRC[2] ^= 0x10
	var opens, closes atomic.Int32
	buses := [][]i2ctest.IO{nil, nil, shtOps(good, badCRC), shtOps(good, good, good, good)}
	openBus := func(name string) (i2c.BusCloser, error) {
		if name != "/dev/i2c-1" {
			t.Errorf("OpenBus(%q), want /dev/i2c-1", name)
		}
		n := int(opens.Add(1)) - 1
		if n >= len(buses) || buses[n] == nil {
			return nil, errors.New("i2c: /dev/i2c-1 does not exist")
		}
		return closeCounter{&i2ctest.Playback{Ops: buses[n], DontPanic: true}, &closes}, nil
	}
	clock := newFakeClock()
	in, err := New(Spec{Name: "room", Kind: SHT3x}, Options{Clock: clock, Rand: func() float64 { return 0 }, OpenBus: openBus})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &memStore{onAppend: func(n int) {
		if n == 3 {
			cancel()
		}
	}}
	in.Run(ctx, st)

	// Backoff with no jitter is half of 1 s, 2 s, ...; after a success it starts over.
	want := []time.Duration{500 * time.Millisecond, time.Second, 10 * time.Second, 500 * time.Millisecond, 10 * time.Second}
	if got := clock.Waits(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("waits = %v, want them to start with %v", got, want)
	}
	s := in.Status()
	if s.Readings != 3 || s.ChecksumErrors != 1 || s.Errors != 3 || s.Opens != 2 || s.Failures != 0 || !s.Open {
		t.Errorf("status = %+v", s)
	}
	if !strings.Contains(s.LastError, "crc mismatch") || s.LastReading.String() != "temperature 25 °C, humidity 50 %RH" {
		t.Errorf("last error %q, last reading %q", s.LastError, s.LastReading)
	}
	if closes.Load() < 1 {
		t.Error("the bus of the failed sensor was not closed")
	}
	msgs := st.messages()
	if len(msgs) != 3 || msgs[0].Address != "sensors/room" || msgs[0].Source != "input:room" {
		t.Fatalf("stored %d messages, first %+v", len(msgs), msgs[0])
	}
	var m amqp.Message
	if err := m.UnmarshalBinary(msgs[0].Payload); err != nil {
		t.Fatal(err)
	}
	if want := `{"input":"room","kind":"sht3x","time":"2025-03-01T12:00:01.500Z","values":{"temperature":25,"humidity":50},"units":{"temperature":"°C","humidity":"%RH"}}`; string(m.GetData()) != want {
		t.Errorf("body = %s\nwant %s", m.GetData(), want)
	}
}

func TestPolledWrongChip(t *testing.T) {
	bmp := []i2ctest.IO{{Addr: 0x77, W: []byte{0xD0}, R: []byte{0x58}}, {Addr: 0x77, W: []byte{0xE0, 0xB6}},
		{Addr: 0x77, W: []byte{0xF3}, R: []byte{0}}, {Addr: 0x77, W: []byte{0x88}, R: make([]byte, 26)}}
	in, err := New(Spec{Name: "x", Kind: BME280, Addr: 0x77}, Options{OpenBus: func(string) (i2c.BusCloser, error) {
		return &i2ctest.Playback{Ops: bmp, DontPanic: true}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.ReadOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "found a BMP280 at 0x77") ||
		!strings.Contains(err.Error(), "set kind = bmp280") {
		t.Errorf("ReadOnce() error = %v", err)
	}
}

// w1Slave is a w1_slave file of a DS18B20 reading 23.125 °C, with a good or bad CRC.
func w1Slave(goodCRC bool) string {
	if goodCRC {
		return "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
	}
	return "72 01 4b 46 7f ff 0e 10 00 : crc=00 NO\n72 01 4b 46 7f ff 0e 10 00 t=23125\n"
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDS18B20IntoStore(t *testing.T) {
	w1 := t.TempDir()
	sensor := filepath.Join(w1, "28-0316a2795aff")
	writeFile(t, filepath.Join(sensor, "w1_slave"), w1Slave(true))
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in, err := New(Spec{Name: "tank", Kind: DS18B20, W1Dir: w1, Interval: 20 * time.Millisecond, Target: "site/tank"},
		Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := runInput(t, in, st)
	checkFor(t, 5*time.Second, "two readings stored", func() bool { return in.Status().Readings >= 2 })

	// A CRC failure: counted, not stored, retried.
	writeFile(t, filepath.Join(sensor, "w1_slave"), w1Slave(false))
	checkFor(t, 5*time.Second, "a checksum error counted", func() bool { return in.Status().ChecksumErrors >= 1 })
	stored := in.Status().Readings

	// Unplugged: the kernel removes the directory; the input reports it and retries.
	if err := os.RemoveAll(sensor); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "the missing sensor reported", func() bool {
		s := in.Status()
		return strings.Contains(s.LastError, "no DS18B20") || strings.Contains(s.LastError, "no such 1-Wire sensor")
	})
	if s := in.Status(); s.Open || s.Failures == 0 || s.NextRetry.IsZero() || s.Readings != stored {
		t.Errorf("status while missing = %+v", s)
	}

	// Plugged in again: readings resume.
	writeFile(t, filepath.Join(sensor, "w1_slave"), w1Slave(true))
	checkFor(t, 5*time.Second, "readings after the sensor came back", func() bool { return in.Status().Readings >= stored+2 })
	stop()

	msgs, err := st.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(msgs)) != in.Status().Readings {
		t.Errorf("store holds %d messages, status counts %d readings", len(msgs), in.Status().Readings)
	}
	for _, sm := range msgs {
		var m amqp.Message
		if err := m.UnmarshalBinary(sm.Payload); err != nil {
			t.Fatal(err)
		}
		if sm.Address != "site/tank" || sm.Source != "input:tank" || !strings.Contains(string(m.GetData()), `"values":{"temperature":23.125}`) {
			t.Errorf("stored %s from %s: %s", sm.Address, sm.Source, m.GetData())
		}
	}
	if err := st.Check(); err != nil {
		t.Errorf("store check: %v", err)
	}
}

func TestStoreErrorsAndOtherInputsContinue(t *testing.T) {
	w1 := t.TempDir()
	writeFile(t, filepath.Join(w1, "28-0316a2795aff", "w1_slave"), w1Slave(true))
	opts := Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	good, err := New(Spec{Name: "good", Kind: DS18B20, W1Dir: w1, Interval: 10 * time.Millisecond}, opts)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := New(Spec{Name: "missing", Kind: DS18B20, W1Dir: filepath.Join(w1, "nope"), Interval: 10 * time.Millisecond}, opts)
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{err: errors.New("disk full")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, []*Input{good, missing}, st) }()
	checkFor(t, 5*time.Second, "store errors counted", func() bool { return good.Status().StoreErrors >= 2 })
	if s := good.Status(); s.Readings != 0 || !strings.Contains(s.LastError, "disk full") {
		t.Errorf("status with a failing store = %+v", s)
	}
	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	checkFor(t, 5*time.Second, "readings stored while the other input fails", func() bool { return good.Status().Readings >= 3 })
	if s := missing.Status(); s.Errors == 0 || s.Readings != 0 {
		t.Errorf("missing input status = %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
}

func TestNewChecksSpec(t *testing.T) {
	for _, s := range []Spec{
		{Kind: SHT3x},
		{Name: "a", Kind: "bme208"},
		{Name: "a", Kind: SHT3x, Addr: 0x76},
		{Name: "a", Kind: BME280, Bus: "i2c"},
		{Name: "a", Kind: DS18B20, Device: "28-xyz"},
		{Name: "a", Kind: Serial, Device: "ttyUSB0", Format: JSON},
		{Name: "a", Kind: Serial, Device: "/dev/ttyUSB0", Format: "xml"},
		{Name: "a", Kind: Serial, Device: "/dev/ttyUSB0", Format: CSV},
		{Name: "a", Kind: Serial, Device: "/dev/ttyUSB0", Format: JSON, Serial: serialConfig(1234)},
	} {
		if _, err := New(s, Options{}); !errors.Is(err, ErrSpec) {
			t.Errorf("New(%+v) error = %v, want ErrSpec", s, err)
		}
	}
	in, err := New(Spec{Name: "a", Kind: ADS1115}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := in.Spec(); s.Bus != "/dev/i2c-1" || s.Addr != 0x48 || s.Interval != 10*time.Second || s.ADC.DataRate != 128 || s.Target != "sensors/a" {
		t.Errorf("defaults: %+v", s)
	}
	if got := in.Status().What; got != "ADS1115 at 0x48 on /dev/i2c-1" {
		t.Errorf("What = %q", got)
	}
}

func TestBusNumber(t *testing.T) {
	for name, want := range map[string]int{"/dev/i2c-1": 1, "I2C0": 0, "22": 22, "/dev/i2c-": -1, "i2c-1": -1, "/dev/i2c-+1": -1, "/dev/i2c--1": -1} {
		n, err := busNumber(name)
		if (err != nil) != (want < 0) || (err == nil && n != want) {
			t.Errorf("busNumber(%q) = %d, %v; want %d", name, n, err, want)
		}
	}
}
