package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/hw/ds18b20"
)

// Limits of [input] values.
const (
	maxInputName     = 64
	minInputInterval = 100 * time.Millisecond
	maxInputInterval = 24 * time.Hour
)

// validateInputs checks every [input "NAME"] section: its name, a known kind, that only
// the kind's keys are set, the values, and that no two inputs read the same chip or
// line.
func (c *Config) validateInputs(add func(*Error)) {
	first := make(map[string]int)  // input name → index of its first section
	claims := make(map[string]int) // what an input reads ("i2c /dev/i2c-1 0x76") → index
	for i, in := range c.Inputs {
		section := inputDisplay(in.Name)
		set := func(field string) bool { _, ok := c.origins[inputKey(i, field)]; return ok }
		at := func(field string, format string, args ...any) {
			k := inputKey(i, field)
			if !set(field) {
				k = inputKey(i, "") // a missing or default value: point at the section header
			}
			add(c.problem(section, field, k, nil, format, args...))
		}
		header := func(format string, args ...any) {
			add(c.problem(section, "", inputKey(i, ""), nil, format, args...))
		}
		if msg := checkInputName(in.Name); msg != "" {
			header("%s", msg)
		}
		if j, dup := first[in.Name]; dup {
			header("duplicate input name (first defined on line %d)", c.origins[inputKey(j, "")].line)
		} else {
			first[in.Name] = i
		}
		if in.Kind == "" {
			if !set("kind") { // a bad value was reported by the parser
				at("kind", "missing: set it to one of %s", strings.Join(inputKinds, ", "))
			}
			continue
		}
		for _, f := range inputFields {
			if set(f.name) && !f.applies(in.Kind) {
				at(f.name, "is not used by kind = %s", in.Kind)
			}
		}
		if in.Target == "" {
			at("target", "must not be empty")
		} else if strings.ContainsFunc(in.Target, isControl) {
			at("target", "contains a control character")
		}

		var claim string
		switch {
		case isI2C(in.Kind):
			if !isBusName(in.Bus) {
				at("bus", "want an I²C bus device such as /dev/i2c-1, got %q", in.Bus)
			}
			// Address 0 is what a value the parser rejected leaves.
			if addrs := i2cAddresses[in.Kind]; in.Address != 0 && !slices.ContainsFunc(addrs, func(a i2cAddr) bool { return a.addr == in.Address }) {
				var alts []string
				for _, a := range addrs {
					alts = append(alts, fmt.Sprintf("0x%02x (%s)", a.addr, a.how))
				}
				at("address", "a %s answers at %s, got 0x%02x", in.Kind, strings.Join(alts, " or "), in.Address)
			}
			claim = fmt.Sprintf("the I²C bus %s at 0x%02x", in.Bus, in.Address)
		case isW1(in.Kind):
			if in.Device != "" && !ds18b20.ValidID(in.Device) {
				at("device", "want a 1-Wire id such as 28-0316a2795aff (see `ls /sys/bus/w1/devices`), got %q", in.Device)
			}
			if in.W1Dir == "" {
				at("w1-dir", "must not be empty")
			}
			claim = "the 1-Wire sensor " + in.Device + " in " + in.W1Dir
			if in.Device == "" {
				claim = "the only 1-Wire sensor in " + in.W1Dir
			}
		case isSerial(in.Kind):
			switch {
			case in.Device == "":
				at("device", "missing: set it to the serial device, such as /dev/ttyUSB0 or /dev/serial0")
			case !filepath.IsAbs(in.Device):
				at("device", "want an absolute path such as /dev/ttyUSB0, got %q", in.Device)
			}
			claim = "the serial line " + in.Device
			switch {
			case in.Format == "":
				at("format", "missing: set it to one of %s", strings.Join(inputFormats, ", "))
			case in.Format == "csv" && !set("csv-header"):
				at("csv-header", "missing: format csv needs the column names, csv-header = a,b,c")
			}
			if set("csv-header") && in.Format != "csv" && in.Format != "" {
				at("csv-header", "is only used with format = csv")
			}
			if set("units") && in.Format == "nmea" {
				at("units", "is not used with format = nmea, whose units are fixed")
			}
			if in.IdleTimeout != 0 && (in.IdleTimeout < time.Second || in.IdleTimeout > maxInputInterval) {
				at("idle-timeout", "must be 0 (off) or from 1s to %v, got %v", maxInputInterval, in.IdleTimeout)
			}
		}
		if isPolled(in.Kind) {
			if in.Interval < minInputInterval || in.Interval > maxInputInterval {
				at("interval", "must be from %v to %v, got %v", minInputInterval, maxInputInterval, in.Interval)
			}
		} else if in.Interval < 0 || in.Interval > maxInputInterval {
			at("interval", "must be from 0s (every reading) to %v, got %v", maxInputInterval, in.Interval)
		}
		if claim != "" {
			if j, dup := claims[claim]; dup {
				header("reads %s, as [%s] (line %d) does", claim, inputDisplay(c.Inputs[j].Name), c.origins[inputKey(j, "")].line)
			} else {
				claims[claim] = i
			}
		}
	}
}

// checkInputName returns what is wrong with an input name, or "".
func checkInputName(name string) string {
	if name == "" || len(name) > maxInputName {
		return fmt.Sprintf("input name must be 1 to %d characters", maxInputName)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._-", r)) {
			return fmt.Sprintf("input name may contain only letters, digits and . _ -, got %q", r)
		}
	}
	return ""
}

// isBusName reports whether s names an I²C bus device: /dev/i2c-N.
func isBusName(s string) bool {
	n, ok := strings.CutPrefix(s, "/dev/i2c-")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}
