package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/hw/ads1115"
	"github.com/shadowgw/shadowgw/hw/bme280"
	"github.com/shadowgw/shadowgw/hw/serial"
	"github.com/shadowgw/shadowgw/hw/sht3x"
)

// Input is a sensor or serial line wired to the gateway itself: one [input "NAME"]
// section. Its readings are stored like device messages, for Target, from source
// "input:NAME". Which keys apply depends on Kind; the others must not be set.
type Input struct {
	// Name names the input in the message subject and source (the section name).
	Name string

	// Kind is what is read (kind): bme280, bmp280, sht3x, ads1115 (I²C), ds18b20
	// (1-Wire) or serial. Required.
	Kind string

	// Target is the address its messages are stored for and forwarded to (target);
	// default "sensors/NAME".
	Target string

	// Interval is, for I²C and 1-Wire inputs, the time between readings (interval),
	// default 10s; for serial inputs, the shortest time between two stored readings of
	// one type (later ones are dropped), default 0: every reading.
	Interval time.Duration

	// Bus is the I²C bus device (bus), default /dev/i2c-1.
	Bus string

	// Address is the chip's I²C address (address): 0x76 (default) or 0x77 for the
	// BME280 and BMP280, 0x44 (default) or 0x45 for the SHT3x, 0x48 (default) to 0x4B
	// for the ADS1115.
	Address uint16

	// Mux, Gain and DataRate set the ADS1115's input (mux, default ain0 against GND),
	// full-scale range in volts (gain, default 4.096, which covers 0 to 3.3 V) and
	// samples per second (data-rate, default 128).
	Mux      ads1115.Mux
	Gain     ads1115.Gain
	DataRate int

	// Device is, for a serial input, the device path (device), required, for example
	// /dev/ttyUSB0 or a /dev/serial/by-id/ link; for a DS18B20, its 1-Wire id
	// (28-0316a2795aff), or empty for the only one present.
	Device string

	// W1Dir is where the kernel lists 1-Wire devices (w1-dir), default
	// /sys/bus/w1/devices; tests point it at a fake tree.
	W1Dir string

	// Baud and Framing set a serial line (baud, default 9600; framing, default 8N1).
	Baud    int
	Framing string

	// Format is what a serial line carries (format), required: json (one object per
	// line), csv (named by CSVHeader) or nmea (NMEA 0183: GGA and RMC sentences).
	Format string

	// CSVHeader names the columns of a csv line (csv-header = a,b,c); required with
	// format csv.
	CSVHeader []string

	// Units gives the unit of values of json and csv lines (units = t:°C, rh:%RH).
	Units []Unit

	// IdleTimeout makes a serial input reopen its line after this long without a line
	// (idle-timeout); default 0: wait forever.
	IdleTimeout time.Duration
}

// Unit is the unit of a named value: one entry of units.
type Unit struct{ Value, Unit string }

// inputSection is the name of the repeated [input "NAME"] section.
const inputSection = "input"

// Input kinds.
var inputKinds = []string{"bme280", "bmp280", "sht3x", "ads1115", "ds18b20", "serial"}

// inputFormats are the formats of serial lines.
var inputFormats = []string{"json", "csv", "nmea"}

func isI2C(kind string) bool {
	return kind == "bme280" || kind == "bmp280" || kind == "sht3x" || kind == "ads1115"
}
func isPolled(kind string) bool { return isI2C(kind) || kind == "ds18b20" }
func isADC(kind string) bool    { return kind == "ads1115" }
func isW1(kind string) bool     { return kind == "ds18b20" }
func isSerial(kind string) bool { return kind == "serial" }

// i2cAddr is an I²C address a chip can have and how it is strapped to it.
type i2cAddr struct {
	addr uint16
	how  string
}

// i2cAddresses lists each I²C kind's addresses, the default first.
var i2cAddresses = map[string][]i2cAddr{
	"bme280":  {{bme280.AddrLow, "SDO to GND"}, {bme280.AddrHigh, "SDO to VDDIO"}},
	"bmp280":  {{bme280.AddrLow, "SDO to GND"}, {bme280.AddrHigh, "SDO to VDDIO"}},
	"sht3x":   {{sht3x.AddrLow, "ADDR to GND"}, {sht3x.AddrHigh, "ADDR to VDD"}},
	"ads1115": {{ads1115.AddrGND, "ADDR to GND"}, {ads1115.AddrVDD, "ADDR to VDD"}, {ads1115.AddrSDA, "ADDR to SDA"}, {ads1115.AddrSCL, "ADDR to SCL"}},
}

// Defaults of [input] keys.
const (
	defaultInputInterval = 10 * time.Second
	defaultI2CBus        = "/dev/i2c-1"
	defaultW1Dir         = "/sys/bus/w1/devices"
	defaultGain          = ads1115.FSR4096
	defaultMux           = ads1115.AIN0
)

// inputField is one key of an [input "NAME"] section.
type inputField struct {
	name   string
	kinds  func(kind string) bool // the kinds it applies to; nil: all
	isPath bool
	list   bool // a list, left out of String when empty
	set    func(in *Input, v string) error
	get    func(in *Input) string
}

// inputFields lists the keys in the order String writes them.
var inputFields = []inputField{
	{name: "kind",
		set: func(in *Input, v string) error {
			if !slices.Contains(inputKinds, v) {
				return fmt.Errorf("want one of %s, got %q%s", strings.Join(inputKinds, ", "), v, suggest(v, inputKinds))
			}
			in.Kind = v
			return nil
		},
		get: func(in *Input) string { return in.Kind }},
	{name: "target",
		set: func(in *Input, v string) error { in.Target = v; return nil },
		get: func(in *Input) string { return in.Target }},
	{name: "interval",
		set: func(in *Input, v string) error { return setDuration(&in.Interval, v) },
		get: func(in *Input) string { return in.Interval.String() }},
	{name: "bus", kinds: isI2C,
		set: func(in *Input, v string) error { in.Bus = v; return nil },
		get: func(in *Input) string { return in.Bus }},
	{name: "address", kinds: isI2C,
		set: func(in *Input, v string) error {
			n, err := strconv.ParseUint(v, 0, 16)
			if err != nil || n < 0x03 || n > 0x77 {
				return fmt.Errorf("want a 7-bit I²C address such as 0x76, got %q", v)
			}
			in.Address = uint16(n)
			return nil
		},
		get: func(in *Input) string { return fmt.Sprintf("0x%02x", in.Address) }},
	{name: "mux", kinds: isADC,
		set: func(in *Input, v string) (err error) { in.Mux, err = ads1115.ParseMux(v); return err },
		get: func(in *Input) string { return in.Mux.String() }},
	{name: "gain", kinds: isADC,
		set: func(in *Input, v string) (err error) { in.Gain, err = ads1115.ParseGain(v); return err },
		get: func(in *Input) string { return in.Gain.String() }},
	{name: "data-rate", kinds: isADC,
		set: func(in *Input, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || !slices.Contains(ads1115.DataRates[:], n) {
				return fmt.Errorf("want samples per second, one of %v, got %q", ads1115.DataRates, v)
			}
			in.DataRate = n
			return nil
		},
		get: func(in *Input) string { return strconv.Itoa(in.DataRate) }},
	{name: "device", kinds: func(k string) bool { return isSerial(k) || isW1(k) },
		set: func(in *Input, v string) error { in.Device = v; return nil },
		get: func(in *Input) string { return in.Device }},
	{name: "w1-dir", kinds: isW1, isPath: true,
		set: func(in *Input, v string) error { in.W1Dir = v; return nil },
		get: func(in *Input) string { return in.W1Dir }},
	{name: "baud", kinds: isSerial,
		set: func(in *Input, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || !slices.Contains(serial.Bauds, n) {
				return fmt.Errorf("want a standard baud rate (%s), got %q", bauds(), v)
			}
			in.Baud = n
			return nil
		},
		get: func(in *Input) string { return strconv.Itoa(in.Baud) }},
	{name: "framing", kinds: isSerial,
		set: func(in *Input, v string) error {
			d, p, s, err := serial.ParseFraming(v)
			if err != nil {
				return err
			}
			in.Framing = serial.Config{DataBits: d, Parity: p, StopBits: s}.Framing()
			return nil
		},
		get: func(in *Input) string { return in.Framing }},
	{name: "format", kinds: isSerial,
		set: func(in *Input, v string) error {
			if !slices.Contains(inputFormats, v) {
				return fmt.Errorf("want one of %s, got %q", strings.Join(inputFormats, ", "), v)
			}
			in.Format = v
			return nil
		},
		get: func(in *Input) string { return in.Format }},
	{name: "csv-header", kinds: isSerial, list: true,
		set: func(in *Input, v string) error {
			var names []string
			for _, n := range strings.Split(v, ",") {
				n = strings.TrimSpace(n)
				switch {
				case n == "":
					return fmt.Errorf("want column names separated by commas, such as t,rh; got %q", v)
				case slices.Contains(names, n):
					return fmt.Errorf("column %q appears twice", n)
				}
				names = append(names, n)
			}
			in.CSVHeader = names
			return nil
		},
		get: func(in *Input) string { return strings.Join(in.CSVHeader, ",") }},
	{name: "units", kinds: isSerial, list: true,
		set: func(in *Input, v string) error {
			var units []Unit
			for _, e := range strings.Split(v, ",") {
				name, unit, ok := strings.Cut(strings.TrimSpace(e), ":")
				name, unit = strings.TrimSpace(name), strings.TrimSpace(unit)
				if !ok || name == "" || unit == "" {
					return fmt.Errorf("want VALUE:UNIT pairs separated by commas, such as t:°C, rh:%%RH, got %q", strings.TrimSpace(e))
				}
				units = append(units, Unit{name, unit})
			}
			in.Units = units
			return nil
		},
		get: func(in *Input) string {
			s := make([]string, len(in.Units))
			for i, u := range in.Units {
				s[i] = u.Value + ":" + u.Unit
			}
			return strings.Join(s, ", ")
		}},
	{name: "idle-timeout", kinds: isSerial,
		set: func(in *Input, v string) error { return setDuration(&in.IdleTimeout, v) },
		get: func(in *Input) string { return in.IdleTimeout.String() }},
}

func setDuration(p *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 500ms, 30s or 5m, got %q", v)
	}
	*p = d
	return nil
}

func bauds() string {
	s := make([]string, len(serial.Bauds))
	for i, b := range serial.Bauds {
		s[i] = strconv.Itoa(b)
	}
	return strings.Join(s[:9], ", ") + ", ..."
}

func lookupInputField(name string) (inputField, bool) {
	for _, f := range inputFields {
		if f.name == name {
			return f, true
		}
	}
	return inputField{}, false
}

// applies reports whether the field is used by inputs of kind.
func (f inputField) applies(kind string) bool { return f.kinds == nil || f.kinds(kind) }

func inputKey(i int, field string) string {
	return key(fmt.Sprintf("%s.%d", inputSection, i), field)
}

// inputDisplay returns an input's section as written in errors: input "NAME".
func inputDisplay(name string) string { return fmt.Sprintf("%s %q", inputSection, name) }

// fillInputDefaults sets the defaults of the keys the file did not set, for the
// input's kind.
func (c *Config) fillInputDefaults() {
	for i := range c.Inputs {
		in := &c.Inputs[i]
		unset := func(field string) bool { _, ok := c.origins[inputKey(i, field)]; return !ok }
		if unset("target") {
			in.Target = "sensors/" + in.Name
		}
		if unset("interval") && isPolled(in.Kind) {
			in.Interval = defaultInputInterval
		}
		if isI2C(in.Kind) {
			if unset("bus") {
				in.Bus = defaultI2CBus
			}
			if unset("address") {
				in.Address = i2cAddresses[in.Kind][0].addr
			}
		}
		if isADC(in.Kind) {
			if unset("mux") {
				in.Mux = defaultMux
			}
			if unset("gain") {
				in.Gain = defaultGain
			}
			if unset("data-rate") {
				in.DataRate = ads1115.DefaultConfig.DataRate
			}
		}
		if isW1(in.Kind) && unset("w1-dir") {
			in.W1Dir = defaultW1Dir
		}
		if isSerial(in.Kind) {
			if unset("baud") {
				in.Baud = serial.DefaultConfig.Baud
			}
			if unset("framing") {
				in.Framing = serial.DefaultConfig.Framing()
			}
		}
	}
}

// SerialConfig returns a serial input's baud rate and framing.
func (in Input) SerialConfig() serial.Config {
	c := serial.Config{Baud: in.Baud}
	c.DataBits, c.Parity, c.StopBits, _ = serial.ParseFraming(in.Framing)
	return c
}

// UnitMap returns Units as a map from value name to unit.
func (in Input) UnitMap() map[string]string {
	if len(in.Units) == 0 {
		return nil
	}
	m := make(map[string]string, len(in.Units))
	for _, u := range in.Units {
		m[u.Value] = u.Unit
	}
	return m
}
