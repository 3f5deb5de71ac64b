package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/hw/ads1115"
)

const inputsText = `[input "attic"]
kind = bme280

[input "battery"]
kind = ads1115
address = 0x4a
mux = ain2-ain3
gain = 0.512V
data-rate = 860
interval = 1m
target = power/battery

[input "tank"]
kind = ds18b20
device = 28-0316a2795aff
w1-dir = w1

[input "gps"]
kind = serial
device = /dev/ttyACM0
format = nmea
interval = 30s
idle-timeout = 1m

[input "weather"]
kind = serial
device = /dev/serial0
baud = 115200
framing = 7e1
format = csv
csv-header = t, rh ,wind
units = t:°C, rh:%RH
`

func TestParseInputs(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "shadowgw.conf")
	writeFile(t, name, inputsText, 0o644)
	c, err := Check(name, Flags{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Input{
		{Name: "attic", Kind: "bme280", Target: "sensors/attic", Interval: 10 * time.Second, Bus: "/dev/i2c-1", Address: 0x76},
		{Name: "battery", Kind: "ads1115", Target: "power/battery", Interval: time.Minute, Bus: "/dev/i2c-1", Address: 0x4A,
			Mux: ads1115.AIN2AIN3, Gain: ads1115.FSR0512, DataRate: 860},
		{Name: "tank", Kind: "ds18b20", Target: "sensors/tank", Interval: 10 * time.Second, Device: "28-0316a2795aff",
			W1Dir: filepath.Join(dir, "w1")},
		{Name: "gps", Kind: "serial", Target: "sensors/gps", Interval: 30 * time.Second, Device: "/dev/ttyACM0", Baud: 9600,
			Framing: "8N1", Format: "nmea", IdleTimeout: time.Minute},
		{Name: "weather", Kind: "serial", Target: "sensors/weather", Device: "/dev/serial0", Baud: 115200, Framing: "7E1",
			Format: "csv", CSVHeader: []string{"t", "rh", "wind"}, Units: []Unit{{"t", "°C"}, {"rh", "%RH"}}},
	}
	if !reflect.DeepEqual(c.Inputs, want) {
		t.Errorf("Inputs =\n%+v\nwant\n%+v", c.Inputs, want)
	}
	// The ADS1115's defaults: AIN0 against GND, ±4.096 V, 128 samples per second.
	c, err = parseText("[input \"a\"]\nkind = ads1115\n")
	if err != nil {
		t.Fatal(err)
	}
	if in := c.Inputs[0]; in.Mux != ads1115.AIN0 || in.Gain != ads1115.FSR4096 || in.DataRate != 128 || in.Address != 0x48 {
		t.Errorf("ads1115 defaults = %+v", in)
	}
	if sc := want[4].SerialConfig(); sc.String() != "115200 7E1" {
		t.Errorf("SerialConfig() = %v", sc)
	}
	if m := want[4].UnitMap(); len(m) != 2 || m["rh"] != "%RH" {
		t.Errorf("UnitMap() = %v", m)
	}
}

func TestInputsRoundTrip(t *testing.T) {
	c, err := parseText(inputsText)
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	back, err := parseText(s)
	if err != nil {
		t.Fatalf("parse(String()): %v\n%s", err, s)
	}
	if !reflect.DeepEqual(back.Inputs, c.Inputs) {
		t.Errorf("round trip changed the inputs:\n%+v\nwant\n%+v", back.Inputs, c.Inputs)
	}
	if !strings.Contains(s, "[input \"battery\"]\nkind = ads1115\ntarget = power/battery\ninterval = 1m0s\nbus = /dev/i2c-1\naddress = 0x4a\nmux = ain2-ain3\ngain = 0.512\ndata-rate = 860\n") {
		t.Errorf("String() =\n%s", s)
	}
}

func TestInputErrors(t *testing.T) {
	tests := []errorCase{
		{"no kind", "[input \"a\"]\nbus = /dev/i2c-1\n",
			[]string{"shadowgw.conf:1: [input \"a\"] kind: missing: set it to one of bme280, bmp280, sht3x, ads1115, ds18b20, serial"}},
		{"unknown kind", "[input \"a\"]\nkind = bme208\n",
			[]string{`shadowgw.conf:2: [input "a"] kind: want one of bme280, bmp280, sht3x, ads1115, ds18b20, serial, got "bme208" (did you mean "bme280"?)`}},
		{"no name", "[input]\nkind = sht3x\n",
			[]string{`shadowgw.conf:1: [input] needs an input name: [input "NAME"]`}},
		{"bad name", "[input \"a/b\"]\nkind = sht3x\n",
			[]string{`shadowgw.conf:1: [input "a/b"] input name may contain only letters, digits and . _ -, got '/'`}},
		{"duplicate name", "[input \"a\"]\nkind = sht3x\n[input \"a\"]\nkind = bme280\n",
			[]string{`shadowgw.conf:3: [input "a"] duplicate input name (first defined on line 1)`}},
		{"unknown key", "[input \"a\"]\nkind = sht3x\nadress = 0x44\n",
			[]string{`shadowgw.conf:3: [input "a"] unknown key "adress" (did you mean "address"?)`}},
		{"key of another kind", "[input \"a\"]\nkind = bme280\nbaud = 9600\nmux = ain0\n",
			[]string{`shadowgw.conf:3: [input "a"] baud: is not used by kind = bme280`, `shadowgw.conf:4: [input "a"] mux: is not used by kind = bme280`}},
		{"wrong address", "[input \"a\"]\nkind = bme280\naddress = 0x44\n",
			[]string{`shadowgw.conf:3: [input "a"] address: a bme280 answers at 0x76 (SDO to GND) or 0x77 (SDO to VDDIO), got 0x44`}},
		{"address not a number", "[input \"a\"]\nkind = sht3x\naddress = 0x4g\n",
			[]string{`shadowgw.conf:3: [input "a"] address: want a 7-bit I²C address such as 0x76, got "0x4g"`}},
		{"address too large", "[input \"a\"]\nkind = sht3x\naddress = 0x80\n",
			[]string{`shadowgw.conf:3: [input "a"] address: want a 7-bit I²C address such as 0x76, got "0x80"`}},
		{"bad bus", "[input \"a\"]\nkind = sht3x\nbus = i2c-1\n",
			[]string{`shadowgw.conf:3: [input "a"] bus: want an I²C bus device such as /dev/i2c-1, got "i2c-1"`}},
		{"interval too short", "[input \"a\"]\nkind = sht3x\ninterval = 10ms\n",
			[]string{`shadowgw.conf:3: [input "a"] interval: must be from 100ms to 24h0m0s, got 10ms`}},
		{"bad mux and gain", "[input \"a\"]\nkind = ads1115\nmux = a0\ngain = 5\ndata-rate = 100\n",
			[]string{
				`shadowgw.conf:3: [input "a"] mux: want one of ain0-ain1, ain0-ain3, ain1-ain3, ain2-ain3, ain0, ain1, ain2, ain3, got "a0"`,
				`shadowgw.conf:4: [input "a"] gain: want a full-scale range in volts: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256, got "5"`,
				`shadowgw.conf:5: [input "a"] data-rate: want samples per second, one of [8 16 32 64 128 250 475 860], got "100"`,
			}},
		{"bad 1-wire id", "[input \"a\"]\nkind = ds18b20\ndevice = /dev/w1\n",
			[]string{`shadowgw.conf:3: [input "a"] device: want a 1-Wire id such as 28-0316a2795aff (see ` + "`ls /sys/bus/w1/devices`" + `), got "/dev/w1"`}},
		{"serial without device and format", "[input \"a\"]\nkind = serial\n",
			[]string{
				`shadowgw.conf:1: [input "a"] device: missing: set it to the serial device, such as /dev/ttyUSB0 or /dev/serial0`,
				`shadowgw.conf:1: [input "a"] format: missing: set it to one of json, csv, nmea`,
			}},
		{"serial relative device", "[input \"a\"]\nkind = serial\ndevice = ttyUSB0\nformat = json\n",
			[]string{`shadowgw.conf:3: [input "a"] device: want an absolute path such as /dev/ttyUSB0, got "ttyUSB0"`}},
		{"bad baud and framing", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = json\nbaud = 9601\nframing = 8N3\n",
			[]string{
				`shadowgw.conf:5: [input "a"] baud: want a standard baud rate (1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, ...), got "9601"`,
				`shadowgw.conf:6: [input "a"] framing: want data bits (5-8), parity (N, E or O) and stop bits (1 or 2) such as 8N1, got "8N3"`,
			}},
		{"csv without header", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = csv\n",
			[]string{`shadowgw.conf:1: [input "a"] csv-header: missing: format csv needs the column names, csv-header = a,b,c`}},
		{"header without csv", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = json\ncsv-header = a\n",
			[]string{`shadowgw.conf:5: [input "a"] csv-header: is only used with format = csv`}},
		{"bad header", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = csv\ncsv-header = a,,b\n",
			[]string{`shadowgw.conf:5: [input "a"] csv-header: want column names separated by commas, such as t,rh; got "a,,b"`}},
		{"empty header", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = csv\ncsv-header =\n",
			[]string{`shadowgw.conf:5: [input "a"] csv-header: want column names separated by commas, such as t,rh; got ""`}},
		{"units with nmea", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = nmea\nunits = t:C\n",
			[]string{`shadowgw.conf:5: [input "a"] units: is not used with format = nmea, whose units are fixed`}},
		{"bad units", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = json\nunits = t=C\n",
			[]string{`shadowgw.conf:5: [input "a"] units: want VALUE:UNIT pairs separated by commas, such as t:°C, rh:%RH, got "t=C"`}},
		{"short idle timeout", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = json\nidle-timeout = 10ms\n",
			[]string{`shadowgw.conf:5: [input "a"] idle-timeout: must be 0 (off) or from 1s to 24h0m0s, got 10ms`}},
		{"empty target", "[input \"a\"]\nkind = sht3x\ntarget =\n",
			[]string{`shadowgw.conf:3: [input "a"] target: must not be empty`}},
		{"same chip twice", "[input \"a\"]\nkind = sht3x\n\n[input \"b\"]\nkind = sht3x\naddress = 0x44\n",
			[]string{`shadowgw.conf:4: [input "b"] reads the I²C bus /dev/i2c-1 at 0x44, as [input "a"] (line 1) does`}},
		{"same line twice", "[input \"a\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = json\n[input \"b\"]\nkind = serial\ndevice = /dev/ttyUSB0\nformat = nmea\n",
			[]string{`shadowgw.conf:5: [input "b"] reads the serial line /dev/ttyUSB0, as [input "a"] (line 1) does`}},
		{"two 1-wire inputs without id", "[input \"a\"]\nkind = ds18b20\n[input \"b\"]\nkind = ds18b20\n",
			[]string{`shadowgw.conf:3: [input "b"] reads the only 1-Wire sensor in /sys/bus/w1/devices, as [input "a"] (line 1) does`}},
		{"old subsection syntax", "[input.a]\n",
			[]string{`shadowgw.conf:1: unknown section [input.a]: write [input "a"]`}},
		{"duplicate key", "[input \"a\"]\nkind = sht3x\nkind = bme280\n",
			[]string{`shadowgw.conf:3: [input "a"] kind: duplicate key (first set on line 2)`}},
	}
	t.Chdir(t.TempDir())
	checkErrorCases(t, tests)
}
