package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/hw"
	"github.com/shadowgw/shadowgw/hw/ds18b20"
)

const sensorsUsage = `usage: shadowgw sensors scan [--bus /dev/i2c-N] [--w1-dir DIR]
       shadowgw sensors read [--config FILE] [--timeout D] NAME

scan lists what answers on the I²C buses at the addresses of the supported chips
(BME280/BMP280, SHT3x, ADS1115), the DS18B20s on 1-Wire, and the serial ports.
read takes one reading of the input NAME of the configuration, prints it and the
JSON body its message would carry, and stores nothing: a wiring check, to run while
the gateway is stopped or for another input than it reads.
`

func cmdSensors(args []string, io stdio) error {
	if len(args) == 0 {
		fmt.Fprint(io.err, sensorsUsage)
		return errUsage
	}
	switch args[0] {
	case "scan":
		return sensorsScan(args[1:], io)
	case "read":
		return sensorsRead(args[1:], io)
	case "-h", "--help", "help":
		fmt.Fprint(io.out, sensorsUsage)
		return nil
	}
	fmt.Fprintf(io.err, "shadowgw sensors: unknown subcommand %q\n%s", args[0], sensorsUsage)
	return errUsage
}

func sensorsScan(args []string, io stdio) error {
	fs := flag.NewFlagSet("shadowgw sensors scan", flag.ContinueOnError)
	fs.SetOutput(io.err)
	bus := fs.String("bus", "", "scan only the I²C bus `DEVICE` (default: every /dev/i2c-N)")
	w1 := fs.String("w1-dir", ds18b20.DefaultDir, "list 1-Wire sensors in `DIR`")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "shadowgw sensors scan: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	buses := hw.I2CBuses()
	if *bus != "" {
		buses = []string{*bus}
	}
	if len(buses) == 0 {
		fmt.Fprintln(io.out, "I²C: no bus (/dev/i2c-*): enable I²C with raspi-config (Interface Options, I2C) or dtparam=i2c_arm=on in config.txt, then reboot")
	}
	for _, name := range buses {
		scanBus(io.out, name)
	}
	scanW1(io.out, *w1)
	scanSerial(io.out)
	return nil
}

func scanBus(w io.Writer, name string) {
	b, err := hw.OpenI2C(name)
	if err != nil {
		fmt.Fprintf(w, "I²C bus %s: %v\n", name, err)
		return
	}
	defer b.Close()
	found := hw.ScanI2C(b)
	fmt.Fprintf(w, "I²C bus %s:\n", name)
	if len(found) == 0 {
		fmt.Fprintln(w, "  nothing answers at 0x44, 0x45, 0x48-0x4b, 0x76 or 0x77 (check wiring and power; i2cdetect lists every address)")
	}
	for _, f := range found {
		hint := ""
		if f.Kind != "" {
			hint = fmt.Sprintf("  → kind = %s, bus = %s, address = 0x%02x", f.Kind, name, f.Addr)
		}
		fmt.Fprintf(w, "  0x%02x  %-8s %s%s\n", f.Addr, f.Chip, f.Detail, hint)
	}
}

func scanW1(w io.Writer, dir string) {
	ids, err := ds18b20.List(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(w, "1-Wire: %s does not exist: enable the w1-gpio overlay (dtoverlay=w1-gpio in config.txt) and reboot\n", dir)
		return
	case err != nil:
		fmt.Fprintf(w, "1-Wire: %v\n", err)
		return
	}
	fmt.Fprintf(w, "1-Wire (%s):\n", dir)
	if len(ids) == 0 {
		fmt.Fprintln(w, "  no DS18B20 (28-*): check the data line's 4.7 kΩ pull-up to 3.3 V")
	}
	for _, id := range ids {
		fmt.Fprintf(w, "  %s  DS18B20  → kind = ds18b20, device = %s\n", id, id)
	}
}

// serialPatterns are where serial ports appear on a Raspberry Pi.
var serialPatterns = []string{"/dev/serial0", "/dev/serial1", "/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*", "/dev/serial/by-id/*"}

func scanSerial(w io.Writer) {
	var ports []string
	for _, p := range serialPatterns {
		m, _ := filepath.Glob(p)
		ports = append(ports, m...)
	}
	sort.Strings(ports)
	fmt.Fprintln(w, "Serial ports:")
	if len(ports) == 0 {
		fmt.Fprintln(w, "  none (a UART needs enable_uart=1; USB adapters appear as /dev/ttyUSB* or /dev/ttyACM*)")
	}
	for _, p := range ports {
		if target, err := os.Readlink(p); err == nil {
			fmt.Fprintf(w, "  %s -> %s\n", p, target)
		} else {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func sensorsRead(args []string, io stdio) error {
	fs := flag.NewFlagSet("shadowgw sensors read", flag.ContinueOnError)
	fs.SetOutput(io.err)
	path, over := configFlags(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "give up on a serial line without a reading after `D`")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(io.err, "shadowgw sensors read: missing the input's NAME\n%s", sensorsUsage)
		return errUsage
	}
	name := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil { // flags after the name
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "shadowgw sensors read: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := config.Check(*path, *over)
	if err != nil {
		return err
	}
	c, err := findInput(cfg, name)
	if err != nil {
		return err
	}
	in, err := hw.New(inputSpec(c), hw.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(io.out, "%s: %s\n", name, in.Status().What)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := in.ReadOnce(ctx)
	if err != nil {
		return err
	}
	m, err := in.Message(r)
	if err != nil {
		return err
	}
	body, err := r.Body(name, c.Kind)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.out, "%s\nmessage to %s (subject %s, source %s, %d bytes encoded):\n%s\n", r, m.Address, name, m.Source, len(m.Payload), body)
	return nil
}
