// Package ds18b20 reads Maxim DS18B20 1-Wire temperature sensors through the Linux w1
// subsystem (the w1-gpio and w1-therm kernel modules), from sysfs: each sensor is a
// directory named after its ROM id, 28-XXXXXXXXXXXX, under /sys/bus/w1/devices.
//
// A read of its w1_slave file makes the kernel run a conversion (up to 750 ms at 12
// bits, data sheet Table 2) and returns the scratchpad, the kernel's CRC verdict and
// the temperature in millidegrees:
//
//	72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//	72 01 4b 46 7f ff 0e 10 57 t=23125
//
// Newer kernels also offer a temperature file holding only the millidegrees; it is
// read when w1_slave is missing. The directory is a parameter so that tests can use a
// fake tree.
//
// A Dev holds no open file and is safe for concurrent use.
package ds18b20

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// DefaultDir is where the kernel lists 1-Wire devices.
const DefaultDir = "/sys/bus/w1/devices"

// Family is the 1-Wire family code of the DS18B20, the first byte of its ROM id.
const Family = "28"

var (
	// ErrCRC is wrapped by errors about a scratchpad whose checksum does not match.
	ErrCRC = errors.New("crc mismatch")
	// ErrNotFound is wrapped by errors about a sensor that is not listed.
	ErrNotFound = errors.New("no such 1-Wire sensor")
)

// idPattern matches a ROM id as the kernel names it: family, dash, 48-bit serial.
var idPattern = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{12}$`)

// ValidID reports whether id looks like a 1-Wire ROM id as the kernel names it,
// 28-0316a2795aff.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// List returns the ids of the DS18B20 sensors under dir, sorted.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ds18b20: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Family+"-") && ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Dev is one sensor.
type Dev struct {
	dir, id string
}

// Open returns the sensor id under dir. With id "" it returns the only DS18B20 there,
// and fails when there is none or more than one.
func Open(dir, id string) (*Dev, error) {
	if id == "" {
		ids, err := List(dir)
		if err != nil {
			return nil, err
		}
		switch len(ids) {
		case 0:
			return nil, fmt.Errorf("ds18b20: no %s-* sensor in %s (is the w1-gpio overlay enabled and the sensor wired?): %w", Family, dir, ErrNotFound)
		case 1:
			id = ids[0]
		default:
			return nil, fmt.Errorf("ds18b20: %d sensors in %s (%s): choose one with device", len(ids), dir, strings.Join(ids, ", "))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("ds18b20: %s not in %s: %w", id, dir, ErrNotFound)
		}
		return nil, fmt.Errorf("ds18b20: %w", err)
	}
	return &Dev{dir: dir, id: id}, nil
}

// ID returns the sensor's ROM id.
func (d *Dev) ID() string { return d.id }

// String names the sensor.
func (d *Dev) String() string { return "DS18B20 " + d.id }

// Sense reads the temperature in millidegrees Celsius. A scratchpad whose checksum the
// kernel or Sense finds wrong gives an error wrapping ErrCRC; a sensor that was
// unplugged one wrapping ErrNotFound.
func (d *Dev) Sense() (int32, error) {
	path := filepath.Join(d.dir, d.id)
	data, err := os.ReadFile(filepath.Join(path, "w1_slave"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			return 0, fmt.Errorf("ds18b20: %s: %w", d.id, ErrNotFound)
		}
		return readTemperature(filepath.Join(path, "temperature"))
	}
	if err != nil {
		return 0, fmt.Errorf("ds18b20: %w", err)
	}
	mc, err := ParseSlave(data)
	if err != nil {
		return 0, fmt.Errorf("ds18b20: %s: %w", d.id, err)
	}
	return mc, nil
}

// readTemperature reads the w1_therm temperature attribute: millidegrees and a newline.
// The kernel checks the CRC and fails the read when it does not match.
func readTemperature(name string) (int32, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0, fmt.Errorf("ds18b20: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("ds18b20: %s: not a temperature: %q", name, bytes.TrimSpace(data))
	}
	return int32(v), nil
}

// ParseSlave decodes the content of a w1_slave file: two lines each holding the nine
// scratchpad bytes, the first ending in the kernel's "crc=XX YES" or "NO", the second
// in "t=MILLIDEGREES". Besides the kernel's verdict, it checks the CRC itself and
// rejects the two scratchpads that pass the CRC but hold no measurement: all zeros (no
// device answered) and the power-on value of 85 °C (the conversion did not run, which
// usually means a power problem, data sheet Table 1 note).
func ParseSlave(data []byte) (int32, error) {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		return 0, fmt.Errorf("w1_slave: want 2 lines, got %d", len(lines))
	}
	pad, verdict, ok := strings.Cut(lines[0], ":")
	if !ok {
		return 0, fmt.Errorf("w1_slave: malformed first line %q", lines[0])
	}
	var sp [9]byte
	fields := strings.Fields(pad)
	if len(fields) != 9 {
		return 0, fmt.Errorf("w1_slave: want 9 scratchpad bytes, got %q", pad)
	}
	for i, f := range fields {
		b, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			return 0, fmt.Errorf("w1_slave: scratchpad byte %q: not hex", f)
		}
		sp[i] = byte(b)
	}
	switch v := strings.Fields(verdict); {
	case len(v) == 2 && v[1] == "YES":
	case len(v) == 2 && v[1] == "NO":
		return 0, fmt.Errorf("w1_slave: kernel reports %s NO: %w", v[0], ErrCRC)
	default:
		return 0, fmt.Errorf("w1_slave: malformed crc verdict %q", strings.TrimSpace(verdict))
	}
	if c := CRC8(sp[:8]); c != sp[8] {
		return 0, fmt.Errorf("w1_slave: scratchpad crc 0x%02x, computed 0x%02x: %w", sp[8], c, ErrCRC)
	}
	if sp == ([9]byte{}) {
		return 0, errors.New("w1_slave: scratchpad all zeros: no device answered")
	}
	_, t, ok := strings.Cut(lines[1], "t=")
	if !ok {
		return 0, fmt.Errorf("w1_slave: no t= in %q", lines[1])
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("w1_slave: t=%s: not a number", t)
	}
	if sp[0] == 0x50 && sp[1] == 0x05 {
		return 0, errors.New("w1_slave: power-on value 85 °C: the conversion did not run (check the sensor's power)")
	}
	return int32(v), nil
}

// CRC8 returns the 1-Wire CRC of b (data sheet "CRC generation": polynomial x⁸ + x⁵ +
// x⁴ + 1, least significant bit first, initialisation 0). The CRC of a scratchpad's
// first eight bytes is its ninth.
func CRC8(b []byte) byte {
	var crc byte
	for _, v := range b {
		crc ^= v
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8C
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
