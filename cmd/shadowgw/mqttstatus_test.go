package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shadowgw/shadowgw/edge/mqtt/mqtttest"
)

// The MQTT listener's counters appear in /status, /metrics and `shadowgw status`; a
// gateway without [mqtt] listen has none.
func TestMQTTStatus(t *testing.T) {
	mqtttest.Need(t, "mosquitto_pub")
	dir := t.TempDir()
	maddr, qaddr := freeAddr(t), freeAddr(t)
	conf := writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[metrics]\nlisten = "+maddr+"\n[mqtt]\nlisten = "+qaddr+"\n")
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"))
	waitHTTP(t, g, maddr)

	host, port, _ := strings.Cut(qaddr, ":")
	const n = 3
	cmd := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-i", "status", "-t", "mqtt-status", "-q", "1", "-l")
	cmd.Stdin = strings.NewReader("a\nb\nc\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}

	r := statusOf(t, maddr).MQTT
	if r == nil || r.Messages != n || r.ConnectionsTotal != 1 || r.Refused != 0 || r.Dropped != 0 || r.Bytes == 0 {
		t.Fatalf("status mqtt = %+v, want %d messages from 1 connection", r, n)
	}
	fams := scrape(t, maddr)
	checkNames(t, fams)
	for name, want := range map[string]float64{
		"shadowgw_mqtt_messages_received_total":   n,
		"shadowgw_mqtt_connections_total":         1,
		"shadowgw_mqtt_connections_refused_total": 0,
		"shadowgw_mqtt_messages_dropped_total":    0,
		"shadowgw_mqtt_received_bytes_total":      float64(r.Bytes),
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	out, err := runStatus(t, "--addr", maddr)
	if err != nil || !strings.Contains(out, "\nmqtt         0 connected; 1 connections since start, 0 refused\n") ||
		!strings.Contains(out, "received 3 messages (") {
		t.Errorf("shadowgw status: %v\n%s", err, out)
	}
	g.stop()

	conf = writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[metrics]\nlisten = "+maddr+"\n")
	g = startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"))
	waitHTTP(t, g, maddr)
	if r := statusOf(t, maddr).MQTT; r != nil {
		t.Errorf("status mqtt = %+v without [mqtt] listen, want none", r)
	}
	if _, ok := scrape(t, maddr)["shadowgw_mqtt_connections"]; ok {
		t.Error("shadowgw_mqtt_connections exported without [mqtt] listen")
	}
	g.stop()
}
