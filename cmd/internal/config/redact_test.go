package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

const fullText = `[edge]
listen = 0.0.0.0:5672
allow-anonymous = false
max-frame-size = 4KiB
idle-timeout = 1m30s
max-message-size = 1000
credit = 12
max-connections = 50
max-connections-per-host = 4
max-sessions = 2
max-links = 8
handshake-timeout = 5s
anonymous-networks = 10.0.0.0/8, 192.168.1.7/32
anonymous-targets = public, sensors/*

[store]
dir = /var/lib/shadowgw
max-batch = 10
max-delay = 5ms
max-bytes = 512MiB
max-messages = 100000
min-free = 64MiB
when-full = drop-oldest
default-ttl = 24h0m0s

[uplink]
url = amqps://broker.example:5671
ca = /etc/ssl/ca.pem
server-name =
user = "gate#way"
password-file = /etc/shadowgw/pw
address-prefix = "/queue/ with ; blanks "
address-template = telemetry/t/{device}
source-annotation = none
commands = /queue/gw-commands
in-flight = 3
reconnect-min = 2s
reconnect-max = 30s
fallback-urls = amqps://backup.example:5671, amqps://b2.example
preferred-probe-interval = 10s
cert-file = /etc/shadowgw/client.pem
key-file = /etc/shadowgw/client-key.pem
rate-limit = 500
rate-limit-bytes = 0

[log]
level = warn

[metrics]
listen = 127.0.0.1:9999

[mqtt]
listen = 127.0.0.1:1883
address-prefix = mqtt/
max-connections = 50
max-packet-size = 64KiB
receive-maximum = 16
max-keep-alive = 5m0s
handshake-timeout = 5s
command-in-flight = 32
topic-alias-maximum = 16

[commands]
default-ttl = 30m0s
max-ttl = 48h0m0s
max-per-device = 100
max-bytes-per-device = 1MiB
max-messages = 100000
max-bytes = 64MiB
anonymous-ids = sensor-*
direct = valve-*, pump-7
direct-source = /queue/c2d-{device}
presence = presence
presence-ttl = 30s

[device "a"]
password-hash = ` + testHash + `
targets = telemetry, alarms/*

[device "b \"quoted\""]
password-hash =
targets =

[route "alarms"]
addresses = alarms/*, panic
priority = 10
max-bytes = 0
max-messages = 0
when-full = backpressure
default-ttl =

[route "default"]
priority = -1
max-bytes = 1MiB
max-messages = 0
when-full =
default-ttl = 1h0m0s
`

func TestStringRedacts(t *testing.T) {
	c, err := parseText(fullText)
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	for _, out := range []string{s, fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", &c)} {
		if strings.Contains(out, testHash) || strings.Contains(out, "pEpCrRTj") {
			t.Errorf("output contains the password hash:\n%s", out)
		}
	}
	if !strings.Contains(s, "password-hash = <redacted>\n") {
		t.Errorf("String() has no redacted hash:\n%s", s)
	}
	// Apart from the redaction, String writes the file it was parsed from.
	want := strings.Replace(fullText, testHash, "<redacted>", 1)
	if s != want {
		t.Errorf("String():\n%s\nwant:\n%s", s, want)
	}
}

func TestStringRoundTrip(t *testing.T) {
	c, err := parseText(fullText)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseText(c.String())
	if err != nil {
		t.Fatalf("parse(String()): %v", err)
	}
	if !reflect.DeepEqual(back.Edge, c.Edge) || back.Store != c.Store || !reflect.DeepEqual(back.Uplink, c.Uplink) || back.Log != c.Log || back.Metrics != c.Metrics {
		t.Errorf("round trip changed values:\n%+v\nwant\n%+v", back, c)
	}
	wantDevices := []Device{{Name: "a", PasswordHash: redacted, Targets: []string{"telemetry", "alarms/*"}}, {Name: `b "quoted"`}}
	if !reflect.DeepEqual(back.Devices, wantDevices) {
		t.Errorf("devices after round trip = %q, want %q", back.Devices, wantDevices)
	}
	if !reflect.DeepEqual(back.Routes, c.Routes) || len(c.Routes) != 2 {
		t.Errorf("routes after round trip = %+v, want %+v", back.Routes, c.Routes)
	}
}

func TestStringRedactsURLPassword(t *testing.T) {
	c := Default()
	c.Uplink.URL = "amqps://gw:hunter2@broker.example"
	if s := c.String(); strings.Contains(s, "hunter2") {
		t.Errorf("String() leaks the URL password:\n%s", s)
	}
	c.Uplink.URL = "amqps://gw:hunter2@broker.example:99999999999999"
	if s := c.String(); strings.Contains(s, "hunter2") {
		t.Errorf("String() leaks the password of an unparsable URL:\n%s", s)
	}
}

func TestLogValueRedacts(t *testing.T) {
	c, err := parseText(fullText)
	if err != nil {
		t.Fatal(err)
	}
	c.Uplink.URL = "amqps://gw:hunter2@broker.example"
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(h(&b)).Info("config", "config", c, "ptr", &c)
		out := b.String()
		if strings.Contains(out, "pEpCrRTj") || strings.Contains(out, "hunter2") {
			t.Errorf("log output leaks a secret: %s", out)
		}
		if !strings.Contains(out, "0.0.0.0:5672") || !strings.Contains(out, "devices") {
			t.Errorf("log output lacks the summary: %s", out)
		}
	}
}
