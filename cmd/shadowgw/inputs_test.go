package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/hw"
	"github.com/shadowgw/shadowgw/hw/ads1115"
	"github.com/shadowgw/shadowgw/hw/serial"
	"github.com/shadowgw/shadowgw/hw/serial/serialtest"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// inputW1Slave is what the kernel's w1_slave file shows for a DS18B20 at 23.125 °C.
const inputW1Slave = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"

// inputFakeW1 makes a fake /sys/bus/w1/devices with one DS18B20 and returns it.
func inputFakeW1(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sensor := filepath.Join(dir, "28-0316a2795aff")
	if err := os.MkdirAll(sensor, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sensor, "w1_slave"), []byte(inputW1Slave), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inputWaitUntil polls cond every 20 ms until it holds, failing the test after d.
func inputWaitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInputSpecs(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "shadowgw.conf")
	text := "[input \"adc\"]\nkind = ads1115\nmux = ain1\ngain = 1.024\n" +
		"[input \"mcu\"]\nkind = serial\ndevice = /dev/ttyUSB0\nbaud = 115200\nframing = 7E2\nformat = csv\ncsv-header = t,rh\nunits = t:°C\nidle-timeout = 1m\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Check(conf, config.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	specs := inputSpecs(cfg)
	adc, mcu := specs[0], specs[1]
	if adc.Kind != hw.ADS1115 || adc.Bus != "/dev/i2c-1" || adc.Addr != 0x48 || adc.Interval != 10*time.Second ||
		adc.ADC != (ads1115.Config{Mux: ads1115.AIN1, Gain: ads1115.FSR1024, DataRate: 128}) || adc.Target != "sensors/adc" {
		t.Errorf("ads1115 spec = %+v", adc)
	}
	if mcu.Kind != hw.Serial || mcu.Device != "/dev/ttyUSB0" || mcu.Serial != (serial.Config{Baud: 115200, DataBits: 7, Parity: 'E', StopBits: 2}) ||
		mcu.Format != hw.CSV || strings.Join(mcu.CSVHeader, ",") != "t,rh" || mcu.Units["t"] != "°C" || mcu.IdleTimeout != time.Minute {
		t.Errorf("serial spec = %+v", mcu)
	}
	// The sidecar is built only when there are inputs.
	if s, err := inputsSidecar(config.Default()); s != nil || err != nil {
		t.Errorf("inputsSidecar(no inputs) = %v, %v; want nil, nil", s != nil, err)
	}
	if s, err := inputsSidecar(cfg); s == nil || err != nil {
		t.Errorf("inputsSidecar() = %v, %v", s != nil, err)
	}
	if st := statusOfInputs(nil); len(st) != 0 {
		t.Errorf("statusOfInputs(nil) = %v", st)
	}
	if _, err := findInput(cfg, "nope"); err == nil || !strings.Contains(err.Error(), `"adc" "mcu"`) {
		t.Errorf("findInput(nope) = %v", err)
	}
}

// TestInputSensorsCommand runs `shadowgw sensors scan` and `shadowgw sensors read` on
// a fake 1-Wire tree.
func TestInputSensorsCommand(t *testing.T) {
	w1 := inputFakeW1(t)
	var out, errOut bytes.Buffer
	if code := realMain([]string{"sensors", "scan", "--w1-dir", w1}, nil, &out, &errOut); code != 0 {
		t.Fatalf("sensors scan: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "28-0316a2795aff  DS18B20  → kind = ds18b20, device = 28-0316a2795aff") ||
		!strings.Contains(out.String(), "Serial ports:") {
		t.Errorf("sensors scan printed:\n%s", out.String())
	}

	conf := filepath.Join(t.TempDir(), "shadowgw.conf")
	text := "[input \"tank\"]\nkind = ds18b20\nw1-dir = " + w1 + "\ntarget = site/tank\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"sensors", "read", "--config", conf, "tank"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("sensors read: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"tank: DS18B20 in " + w1, "temperature 23.125 °C", "message to site/tank (subject tank, source input:tank",
		`"values":{"temperature":23.125},"units":{"temperature":"°C"}}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("sensors read printed:\n%s\nwant it to contain %q", out.String(), want)
		}
	}
	errOut.Reset()
	if code := realMain([]string{"sensors", "read", "tank", "--config", conf, "--timeout", "1s"}, nil, &out, &errOut); code != 0 {
		t.Errorf("sensors read NAME --flags: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := realMain([]string{"sensors", "read", "--config", conf, "attic"}, nil, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), `no input "attic"`) {
		t.Errorf("sensors read of an unknown input: exit %d: %s", code, errOut.String())
	}
	if code := realMain([]string{"sensors"}, nil, &out, &errOut); code != 2 {
		t.Errorf("sensors without a subcommand: exit %d, want 2", code)
	}
}

// TestInputToCloud carries sensor readings to the real cloud peer: a DS18B20 on a fake
// 1-Wire tree and a GPS receiver on a pseudo-terminal, read by the shadowgw binary,
// stored, and forwarded to RabbitMQ over TLS. Line noise and a bad checksum on the
// serial line are not forwarded; the readings arrive with their JSON body,
// content-type, subject, creation-time and source annotation.
func TestInputToCloud(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start RabbitMQ")
	}
	b := cloudtest.StartRabbitMQ(t)
	w1 := inputFakeW1(t)
	gps := serialtest.Open(t)
	extra := "[input \"tank\"]\nkind = ds18b20\nw1-dir = " + w1 + "\ninterval = 200ms\ntarget = e2e-input-tank\n" +
		"[input \"gps\"]\nkind = serial\ndevice = " + gps.Path + "\nbaud = 9600\nformat = nmea\ntarget = e2e-input-gps\n"
	g := startGateway(t, uplinkArgs(t, b, t.TempDir(), extra)...)
	inputWaitUntil(t, 10*time.Second, "the gateway to open the GPS line", func() bool { return g.log.count("serial line open", "input=gps") > 0 })

	// The GPS receiver talks until the test has what it needs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			gps.Write(t, "\x00\xfe noise $GP\r\n"+
				"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48\r\n"+ // bad checksum
				"$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39\r\n"+
				"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n")
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	defer wg.Wait()
	defer close(stop)

	for _, q := range []struct{ name, queue, kind, values, unitOf, unit string }{
		{"tank", "/queue/e2e-input-tank", "ds18b20", `{"temperature":23.125}`, "temperature", "°C"},
		{"gps", "/queue/e2e-input-gps", "serial", `{"latitude":48.1173,"longitude":11.5166667,"altitude":545.4,"quality":1,"satellites":8,"hdop":0.9,"fix_time":"12:35:19.000"}`,
			"altitude", "m"},
	} {
		msgs := b.Receive(t, q.queue, 2, time.Minute)
		for _, m := range msgs {
			var body struct {
				Input, Kind, Time, Type string
				Values                  json.RawMessage
				Units                   map[string]string
			}
			if err := json.Unmarshal(m.GetData(), &body); err != nil {
				t.Fatalf("%s: body %q: %v", q.name, m.GetData(), err)
			}
			if body.Input != q.name || body.Kind != q.kind || string(body.Values) != q.values || body.Units[q.unitOf] != q.unit {
				t.Errorf("%s: body = %s", q.name, m.GetData())
			}
			if ts, err := time.Parse(time.RFC3339, body.Time); err != nil || time.Since(ts) > time.Minute {
				t.Errorf("%s: time %q: %v", q.name, body.Time, err)
			}
			p := m.Properties
			if p == nil || p.ContentType == nil || *p.ContentType != "application/json" || p.Subject == nil || *p.Subject != q.name ||
				p.CreationTime == nil || time.Since(*p.CreationTime) > time.Minute {
				t.Errorf("%s: properties = %+v", q.name, p)
			}
			if src := m.Annotations["x-opt-shadowgw-source"]; src != "input:"+q.name {
				t.Errorf("%s: source annotation = %v, want input:%s (annotations %v)", q.name, src, q.name, m.Annotations)
			}
			if _, dup := m.Annotations[amqp.Symbol("x-opt-shadowgw-source")]; dup {
				t.Errorf("%s: the source annotation appears twice: %v", q.name, m.Annotations)
			}
		}
	}
	g.stop()
	// Only good GGA sentences were forwarded: the noise, the bad checksum and the GSA
	// sentence were counted and dropped (the log shows the first at debug only).
	for _, m := range b.Drain(t, "/queue/e2e-input-gps", time.Second) {
		if !bytes.Contains(m.GetData(), []byte(`"type":"GGA","values":{"latitude":48.1173`)) {
			t.Errorf("unexpected message on the GPS queue: %s", m.GetData())
		}
	}
}
