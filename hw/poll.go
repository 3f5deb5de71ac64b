package hw

import (
	"context"
	"errors"
	"fmt"
	"github.com/shadowgw/shadowgw/hw/backoff"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/host/v3/sysfs"

	"github.com/shadowgw/shadowgw/hw/ads1115"
	"github.com/shadowgw/shadowgw/hw/bme280"
	"github.com/shadowgw/shadowgw/hw/ds18b20"
	"github.com/shadowgw/shadowgw/hw/sht3x"
)

// runPolled takes a reading every Spec.Interval until ctx is done. A failure closes
// the sensor (and its bus); it is opened again after the backoff.
func (in *Input) runPolled(ctx context.Context, st Store) {
	bo := &backoff.Backoff{Min: in.opts.BackoffMin, Max: in.opts.BackoffMax, Rand: in.opts.Rand}
	clock := in.opts.Clock
	var s sensor
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	next := clock.Now()
	for in.wait(ctx, next.Sub(clock.Now())) {
		if s == nil {
			var err error
			if s, err = in.openSensor(); err != nil {
				next = clock.Now().Add(in.failed(err, bo))
				continue
			}
			in.st.update(func(st *Status) { st.Opens++ })
			in.log.Info("sensor found", "sensor", s.String())
		}
		t := clock.Now()
		vals, err := s.read()
		if err != nil {
			if isChecksum(err) {
				in.st.update(func(st *Status) { st.ChecksumErrors++ })
			}
			s.close()
			s = nil
			next = clock.Now().Add(in.failed(err, bo))
			continue
		}
		in.working(bo)
		in.deliver(ctx, st, Reading{Time: t, Values: vals})
		next = t.Add(in.spec.Interval)
	}
}

// sensor is an open polled sensor.
type sensor interface {
	read() ([]Value, error)
	close()
	String() string
}

// openSensor opens the bus (I²C) and the sensor on it.
func (in *Input) openSensor() (sensor, error) {
	if in.spec.Kind == DS18B20 {
		d, err := ds18b20.Open(in.spec.W1Dir, in.spec.Device)
		if err != nil {
			return nil, err
		}
		return w1Sensor{d}, nil
	}
	bus, err := in.opts.OpenBus(in.spec.Bus)
	if err != nil {
		return nil, err
	}
	s, err := in.openI2C(bus)
	if err != nil {
		bus.Close()
		return nil, err
	}
	return s, nil
}

func (in *Input) openI2C(bus i2c.BusCloser) (sensor, error) {
	addr := in.spec.Addr
	switch in.spec.Kind {
	case BME280, BMP280:
		d, err := bme280.New(bus, addr)
		if err != nil {
			return nil, err
		}
		if in.spec.Kind == BME280 && !d.Chip().HasHumidity() {
			return nil, fmt.Errorf("found a %s at 0x%02x, which has no humidity sensor: set kind = bmp280", d.Chip(), addr)
		}
		return &bmeSensor{bus, d, in.spec.Kind == BME280}, nil
	case SHT3x:
		d, err := sht3x.New(bus, addr)
		if err != nil {
			return nil, err
		}
		return &shtSensor{bus, d}, nil
	case ADS1115:
		d, err := ads1115.New(bus, addr, in.spec.ADC)
		if err != nil {
			return nil, err
		}
		return &adcSensor{bus, d}, nil
	}
	return nil, fmt.Errorf("kind %q is not an I²C sensor", in.spec.Kind)
}

type bmeSensor struct {
	bus      i2c.BusCloser
	d        *bme280.Dev
	humidity bool
}

func (s *bmeSensor) read() ([]Value, error) {
	m, err := s.d.Sense()
	if err != nil {
		return nil, err
	}
	v := []Value{
		{Name: "temperature", V: m.Celsius(), Unit: "°C"},
		{Name: "pressure", V: m.HectoPascal(), Unit: "hPa"},
	}
	if s.humidity && m.HasHumidity {
		v = append(v, Value{Name: "humidity", V: m.Percent(), Unit: "%RH"})
	}
	return v, nil
}

func (s *bmeSensor) close()         { s.bus.Close() }
func (s *bmeSensor) String() string { return s.d.String() + " on " + s.bus.String() }

type shtSensor struct {
	bus i2c.BusCloser
	d   *sht3x.Dev
}

func (s *shtSensor) read() ([]Value, error) {
	m, err := s.d.Sense()
	if err != nil {
		return nil, err
	}
	return []Value{
		{Name: "temperature", V: m.Celsius(), Unit: "°C"},
		{Name: "humidity", V: m.Percent(), Unit: "%RH"},
	}, nil
}

func (s *shtSensor) close()         { s.bus.Close() }
func (s *shtSensor) String() string { return s.d.String() + " on " + s.bus.String() }

type adcSensor struct {
	bus i2c.BusCloser
	d   *ads1115.Dev
}

func (s *adcSensor) read() ([]Value, error) {
	m, err := s.d.Sense()
	if err != nil {
		return nil, err
	}
	return []Value{
		{Name: "voltage", V: m.Volts(), Unit: "V"},
		{Name: "raw", V: int64(m.Raw)},
	}, nil
}

func (s *adcSensor) close()         { s.bus.Close() }
func (s *adcSensor) String() string { return s.d.String() + " on " + s.bus.String() }

type w1Sensor struct{ d *ds18b20.Dev }

func (s w1Sensor) read() ([]Value, error) {
	mc, err := s.d.Sense()
	if err != nil {
		return nil, err
	}
	return []Value{{Name: "temperature", V: float64(mc) / 1000, Unit: "°C"}}, nil
}

func (s w1Sensor) close()         {}
func (s w1Sensor) String() string { return s.d.String() }

// OpenI2C opens the Linux I²C bus device name (/dev/i2c-N; also I2CN or N) through
// periph.io's sysfs driver. It opens the device directly rather than through periph's
// bus registry, which lists the buses once per process: a bus enabled or a module
// loaded after the gateway started is then found at the next attempt.
func OpenI2C(name string) (i2c.BusCloser, error) {
	n, err := busNumber(name)
	if err != nil {
		return nil, fmt.Errorf("i2c: %w", err)
	}
	b, err := sysfs.NewI2C(n)
	if err == nil {
		return b, nil
	}
	// periph's error loses the cause; find it again for a useful hint.
	path := "/dev/i2c-" + strconv.Itoa(n)
	switch f, oerr := os.OpenFile(path, os.O_RDWR, 0); {
	case errors.Is(oerr, fs.ErrNotExist):
		return nil, fmt.Errorf("i2c: %s does not exist: enable I²C (raspi-config, or dtparam=i2c_arm=on in config.txt) and load the i2c-dev module", path)
	case errors.Is(oerr, fs.ErrPermission):
		return nil, fmt.Errorf("i2c: %w (add the gateway's user to group i2c)", oerr)
	case oerr == nil:
		f.Close()
	}
	return nil, fmt.Errorf("i2c: %s: %w", path, err)
}

// busNumber reads a bus name: /dev/i2c-N, I2CN or N.
func busNumber(name string) (int, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(name, "/dev/i2c-"), "I2C")
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("bus %q: want /dev/i2c-N", name)
	}
	return n, nil
}

// I2CBuses returns the I²C bus devices present, /dev/i2c-N, in bus order.
func I2CBuses() []string {
	paths, _ := filepath.Glob("/dev/i2c-*")
	paths = slices.DeleteFunc(paths, func(p string) bool { _, err := busNumber(p); return err != nil })
	slices.SortFunc(paths, func(a, b string) int {
		x, _ := busNumber(a)
		y, _ := busNumber(b)
		return x - y
	})
	return paths
}
