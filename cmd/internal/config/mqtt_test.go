package config

import (
	"testing"
	"time"
)

func TestMQTTConfig(t *testing.T) {
	c, err := parseText("[mqtt]\nlisten = 127.0.0.1:1883\naddress-prefix = m/\nmax-connections = 10\nmax-packet-size = 64KiB\nreceive-maximum = 16\nmax-keep-alive = 5m\nhandshake-timeout = 2s\ncommand-in-flight = 8\ntopic-alias-maximum = 0\n")
	if err != nil {
		t.Fatal(err)
	}
	want := MQTT{Listen: "127.0.0.1:1883", AddressPrefix: "m/", MaxConnections: 10, MaxPacketSize: 64 << 10, ReceiveMaximum: 16, MaxKeepAlive: 5 * time.Minute, HandshakeTimeout: 2 * time.Second,
		CommandInFlight: 8}
	if c.MQTT != want {
		t.Errorf("got %+v, want %+v", c.MQTT, want)
	}
	if d := Default(); d.MQTT.Enabled() {
		t.Errorf("MQTT is on by default: %+v", d.MQTT)
	}
}

func TestMQTTErrors(t *testing.T) {
	tests := []errorCase{
		{"listen without port", "[mqtt]\nlisten = localhost\n",
			[]string{`shadowgw.conf:2: [mqtt] listen: want HOST:PORT (e.g. 127.0.0.1:1883), or empty for no MQTT, got "localhost"`}},
		{"listen bad port", "[mqtt]\nlisten = :mqtt\n",
			[]string{`shadowgw.conf:2: [mqtt] listen: port must be a number from 0 to 65535, got "mqtt"`}},
		{"listen on the AMQP port", "[edge]\nlisten = 127.0.0.1:5672\n[mqtt]\nlisten = 127.0.0.1:5672\n",
			[]string{`shadowgw.conf:4: [mqtt] listen: is the same address as [edge] listen (127.0.0.1:5672)`}},
		{"packet size too small", "[mqtt]\nmax-packet-size = 100\n",
			[]string{`shadowgw.conf:2: [mqtt] max-packet-size: must be from 128 to 268500992 (262208KiB), got 100`}},
		{"command in flight zero", "[mqtt]\ncommand-in-flight = 0\n",
			[]string{`shadowgw.conf:2: [mqtt] command-in-flight: must be from 1 to 65535, got 0`}},
		{"topic alias maximum too big", "[mqtt]\ntopic-alias-maximum = 70000\n",
			[]string{`shadowgw.conf:2: [mqtt] topic-alias-maximum: must be from 0 (none) to 65535 (MQTT 5 Topic Alias Maximum), got 70000`}},
		{"receive maximum zero", "[mqtt]\nreceive-maximum = 0\n",
			[]string{`shadowgw.conf:2: [mqtt] receive-maximum: must be from 1 to 65535 (MQTT 5 Receive Maximum), got 0`}},
		{"keep-alive not whole seconds", "[mqtt]\nmax-keep-alive = 1500ms\n",
			[]string{`shadowgw.conf:2: [mqtt] max-keep-alive: must be 0 (the client's) or whole seconds up to 18h12m15s, got 1.5s`}},
		{"handshake too short", "[mqtt]\nhandshake-timeout = 10ms\n",
			[]string{`shadowgw.conf:2: [mqtt] handshake-timeout: must be from 100ms to 10m, got 10ms`}},
		{"unknown key", "[mqtt]\nport = 1883\n",
			[]string{`shadowgw.conf:2: [mqtt] unknown key "port"`}},
	}
	t.Chdir(t.TempDir())
	checkErrorCases(t, tests)
}
