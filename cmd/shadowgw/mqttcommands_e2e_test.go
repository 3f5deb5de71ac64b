package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/mqtt/mqtttest"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// Issue 17, test 4: commands reach MQTT subscribers. RabbitMQ over TLS is the cloud
// (the [uplink] commands receiver takes the commands from a queue), Paho and
// mosquitto_sub from Debian are the devices, the gateway is the real binary.
func TestMQTTCommandsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start RabbitMQ")
	}
	mqtttest.Need(t, "paho", "mosquitto_sub")
	b := cloudtest.StartRabbitMQ(t)
	mqttAddr := freeAddr(t)
	args, _ := commandArgs(t, b, t.TempDir(), "[mqtt]\nlisten = "+mqttAddr+"\n")
	g := startGateway(t, args...)

	// Queued while the device is offline: one that expires first, then ten.
	const n = 10
	short := mqttCommand("mq", -1)
	short.Header = &amqp.MessageHeader{TTL: 300 * time.Millisecond}
	b.Send(t, deviceCmdQueue, short)
	waitMetric(t, g, "shadowgw_commands_expired_total", 1, 30*time.Second)
	var cmds []*amqp.Message
	for i := range n {
		cmds = append(cmds, mqttCommand("mq", i))
	}
	b.Send(t, deviceCmdQueue, cmds...)
	waitMetric(t, g, "shadowgw_commands_queued{", n, 30*time.Second)

	// A persistent MQTT 5 session that dies while handling the fourth command: its
	// PUBACK is never sent; Paho may not have written those of the previous ones
	// either. The gateway sent all ten (its window is 32).
	sub := mqtttest.Subscribe{Addr: mqttAddr, ClientID: "mq", Version: 5, SessionExpiry: 600, Topic: "command/mq/#", QoS: 1,
		Count: n, DieAt: 4, Timeout: time.Minute}
	first := mqtttest.RunSubscriber(t, sub)
	if first.End != "DIED" || first.SessionPresent {
		t.Fatalf("first run: %s, session present %v, got %d", first.End, first.SessionPresent, len(first.Got))
	}
	for i, m := range first.Got {
		checkMQTTCommand(t, m, i, false)
	}
	waitMetric(t, g, "shadowgw_mqtt_connections ", 0, 10*time.Second)
	left := int(metricSum(g, "shadowgw_commands_queued{"))
	if left < n-3 || left > n {
		t.Fatalf("%d commands queued after the first run, want %d to %d", left, n-3, n)
	}

	// Back with the session, without subscribing: every unacknowledged command again,
	// in order, with DUP set (§4.4).
	sub.Clean, sub.Topic, sub.DieAt, sub.Count = false, "", 0, left
	second := mqtttest.RunSubscriber(t, sub)
	if second.End != "DONE" || !second.SessionPresent {
		t.Fatalf("second run: %s, session present %v, got %d", second.End, second.SessionPresent, len(second.Got))
	}
	for i, m := range second.Got {
		checkMQTTCommand(t, m, n-left+i, true)
	}
	t.Logf("%d of 4 received commands acknowledged before the subscriber died; %d sent again with DUP", n-left, left)
	waitMetric(t, g, "shadowgw_commands_queued{", 0, 10*time.Second)
	waitMetric(t, g, "shadowgw_commands_delivered_total", n, 10*time.Second)
	waitMetric(t, g, "shadowgw_mqtt_commands_delivered_total", n, 10*time.Second)
	waitMetric(t, g, "shadowgw_mqtt_commands_resent_total", float64(left), 10*time.Second)

	// Acknowledged commands are gone: another subscription gets nothing.
	host, port, _ := strings.Cut(mqttAddr, ":")
	var stderr strings.Builder
	again := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-i", "mq-again", "-t", "command/mq/#", "-q", "1", "-W", "2", "-F", "%t %p")
	again.Stderr = &stderr
	out, _ := again.Output()
	if len(out) != 0 || !strings.Contains(stderr.String(), "Timed out") {
		t.Fatalf("a second subscription got %q (%s), want nothing until it timed out", out, stderr.String())
	}

	// mosquitto_sub (3.1.1) gets commands queued before it connected, in order, on
	// command/<id>/# and on Hono's command///req/# (its client id is its device id).
	var more []*amqp.Message
	for i := range 3 {
		more = append(more, mqttCommand("ms", i), mqttCommand("hono-dev", i))
	}
	b.Send(t, deviceCmdQueue, more...)
	waitMetric(t, g, "shadowgw_commands_queued{", 6, 30*time.Second)
	for _, c := range []struct{ id, filter, want string }{
		{"ms", "command/ms/#", "command/ms/set-valve ms 0\ncommand/ms/set-valve ms 1\ncommand/ms/set-valve ms 2\n"},
		{"hono-dev", "command///req/#", "command///req/corr-0/set-valve hono-dev 0\ncommand///req/corr-1/set-valve hono-dev 1\n" +
			"command///req/corr-2/set-valve hono-dev 2\n"},
	} {
		out, err := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-i", c.id, "-t", c.filter, "-q", "1", "-C", "3", "-W", "30",
			"-F", "%t %p").CombinedOutput()
		if err != nil || string(out) != c.want {
			t.Fatalf("mosquitto_sub %s: %v: %q, want %q", c.filter, err, out, c.want)
		}
	}
	waitMetric(t, g, "shadowgw_commands_queued{", 0, 10*time.Second)
	g.stop()
}

// mqttCommand is the cloud's command i for device (device_id), with the properties a
// PUBLISH carries.
func mqttCommand(device string, i int) *amqp.Message {
	m := amqp.NewMessage([]byte(fmt.Sprintf("%s %d", device, i)))
	m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("%s-%d", device, i), Subject: ptr("set-valve"),
		ReplyTo: ptr("replies/app"), CorrelationID: fmt.Sprintf("corr-%d", i), ContentType: ptr("application/json")}
	m.ApplicationProperties = map[string]any{"device_id": device, "n": int64(i)}
	m.Header = &amqp.MessageHeader{Durable: true, TTL: time.Hour}
	return m
}

// checkMQTTCommand checks that m is command i of device mq, as mqttCommand made it.
func checkMQTTCommand(t *testing.T, m mqtttest.Received, i int, dup bool) {
	t.Helper()
	p := m.Props
	exp, _ := p["MessageExpiryInterval"].(float64)
	users := fmt.Sprint(p["UserProperty"])
	switch {
	case m.Topic != "command/mq/set-valve" || m.Payload != fmt.Sprintf("mq %d", i) || m.QoS != 1 || m.Dup != dup:
		t.Fatalf("message %d: %+v, want command %d, dup %v", i, m, i, dup)
	case p["CorrelationData"] != fmt.Sprintf("corr-%d", i) || p["ResponseTopic"] != "replies/app" || p["ContentType"] != "application/json":
		t.Fatalf("message %d: properties %v", i, p)
	case exp < 3500 || exp > 3600:
		t.Fatalf("message %d: message expiry interval %v, want what is left of an hour", i, p["MessageExpiryInterval"])
	case !strings.Contains(users, "[device_id mq]") || !strings.Contains(users, fmt.Sprintf("[n %d]", i)):
		t.Fatalf("message %d: user properties %s", i, users)
	}
}
