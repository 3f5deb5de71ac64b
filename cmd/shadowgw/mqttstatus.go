package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowgw/shadowgw/edge/mqtt"
)

// mqttReport is the MQTT listener in the status (mqtt.Stats); absent without [mqtt]
// listen.
type mqttReport struct {
	Connected        int64  `json:"connected"`
	ConnectionsTotal uint64 `json:"connections_total"`
	Refused          uint64 `json:"refused"`  // before CONNACK: limits, authentication, protocol
	Messages         uint64 `json:"messages"` // stored, wills included
	Bytes            uint64 `json:"bytes"`    // AMQP bytes stored
	Dropped          uint64 `json:"dropped"`  // QoS 0 messages that could not be stored

	CommandsSent         uint64 `json:"commands_sent"`          // published to subscribers, resent ones included
	CommandsResent       uint64 `json:"commands_resent"`        // sent again with DUP in a resumed session
	CommandsDelivered    uint64 `json:"commands_delivered"`     // acknowledged (QoS 1) or written (QoS 0)
	CommandsDeadLettered uint64 `json:"commands_dead_lettered"` // PUBACK >= 0x80, or no MQTT form
}

// newMQTTReport returns the counters of s, nil when s is nil.
func newMQTTReport(s *mqtt.Server) *mqttReport {
	if s == nil {
		return nil
	}
	st := s.Stats()
	return &mqttReport{Connected: st.Connections, ConnectionsTotal: st.ConnectionsTotal, Refused: st.Refused,
		Messages: st.Messages, Bytes: st.Bytes, Dropped: st.Dropped,
		CommandsSent: st.CommandsSent, CommandsResent: st.CommandsResent,
		CommandsDelivered: st.CommandsDelivered, CommandsDeadLettered: st.CommandsDeadLettered}
}

// printMQTT prints r with printStatus's line, nothing when r is nil.
func printMQTT(line func(label, format string, args ...any), r *mqttReport) {
	if r == nil {
		return
	}
	line("mqtt", "%d connected; %d connections since start, %d refused", r.Connected, r.ConnectionsTotal, r.Refused)
	line("", "received %d messages (%s), dropped %d", r.Messages, formatBytes(r.Bytes), r.Dropped)
	if r.CommandsSent > 0 || r.CommandsDeadLettered > 0 {
		line("", "commands: %d sent (%d again in a resumed session), %d delivered, %d dead-lettered",
			r.CommandsSent, r.CommandsResent, r.CommandsDelivered, r.CommandsDeadLettered)
	}
}

var (
	descMQTTConnections = prometheus.NewDesc("shadowgw_mqtt_connections",
		"MQTT client connections open now.", nil, nil)
	descMQTTConnectionsTotal = prometheus.NewDesc("shadowgw_mqtt_connections_total",
		"MQTT client connections accepted.", nil, nil)
	descMQTTRefused = prometheus.NewDesc("shadowgw_mqtt_connections_refused_total",
		"MQTT connections refused before CONNACK: limits, authentication, protocol errors.", nil, nil)
	descMQTTMessages = prometheus.NewDesc("shadowgw_mqtt_messages_received_total",
		"MQTT messages (wills included) stored durably.", nil, nil)
	descMQTTBytes = prometheus.NewDesc("shadowgw_mqtt_received_bytes_total",
		"Bytes of the AMQP messages stored for MQTT publications.", nil, nil)
	descMQTTDropped = prometheus.NewDesc("shadowgw_mqtt_messages_dropped_total",
		"QoS 0 MQTT messages that could not be stored and were lost.", nil, nil)
	descMQTTCommandsSent = prometheus.NewDesc("shadowgw_mqtt_commands_sent_total",
		"Commands published to MQTT subscribers, those sent again included.", nil, nil)
	descMQTTCommandsResent = prometheus.NewDesc("shadowgw_mqtt_commands_resent_total",
		"Commands sent again with DUP to an MQTT client that resumed its session.", nil, nil)
	descMQTTCommandsDelivered = prometheus.NewDesc("shadowgw_mqtt_commands_delivered_total",
		"Commands acknowledged by MQTT subscribers (QoS 1) or written to them (QoS 0).", nil, nil)
	descMQTTCommandsDead = prometheus.NewDesc("shadowgw_mqtt_commands_dead_lettered_total",
		"Commands an MQTT subscriber refused (PUBACK reason >= 0x80) or that had no MQTT form.", nil, nil)
)

// mqttCollector exports the MQTT server's counters; nothing without [mqtt] listen.
type mqttCollector struct{ s *mqtt.Server }

// Describe implements prometheus.Collector.
func (mqttCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMQTTConnections, descMQTTConnectionsTotal, descMQTTRefused, descMQTTMessages, descMQTTBytes, descMQTTDropped,
		descMQTTCommandsSent, descMQTTCommandsResent, descMQTTCommandsDelivered, descMQTTCommandsDead} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c mqttCollector) Collect(ch chan<- prometheus.Metric) {
	r := newMQTTReport(c.s)
	if r == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descMQTTConnections, prometheus.GaugeValue, float64(r.Connected))
	for _, m := range []struct {
		d *prometheus.Desc
		v uint64
	}{{descMQTTConnectionsTotal, r.ConnectionsTotal}, {descMQTTRefused, r.Refused}, {descMQTTMessages, r.Messages}, {descMQTTBytes, r.Bytes}, {descMQTTDropped, r.Dropped},
		{descMQTTCommandsSent, r.CommandsSent}, {descMQTTCommandsResent, r.CommandsResent},
		{descMQTTCommandsDelivered, r.CommandsDelivered}, {descMQTTCommandsDead, r.CommandsDeadLettered}} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
	}
}
