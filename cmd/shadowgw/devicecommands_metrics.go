package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics of commands to devices, read at scrape time.
var (
	descCmdQueued = prometheus.NewDesc("shadowgw_commands_queued",
		"Commands queued for a device, per device.", []string{"device"}, nil)
	descCmdOldest = prometheus.NewDesc("shadowgw_commands_oldest_age_seconds",
		"Age of the oldest command queued for a device, per device.", []string{"device"}, nil)
	descCmdDelivered = prometheus.NewDesc("shadowgw_commands_delivered_total",
		"Commands their device accepted (kept across restarts).", nil, nil)
	descCmdExpired = prometheus.NewDesc("shadowgw_commands_expired_total",
		"Commands that expired on the gateway before delivery, never delivered (kept across restarts).", nil, nil)
	descCmdDead = prometheus.NewDesc("shadowgw_commands_dead_lettered_total",
		"Commands their device rejected or said undeliverable-here, moved to the dead letters (kept across restarts).", nil, nil)
	descCmdSuperseded = prometheus.NewDesc("shadowgw_commands_superseded_total",
		"Queued commands replaced by a newer one with the same supersede key.", nil, nil)
	descCmdRefused = prometheus.NewDesc("shadowgw_commands_refused_total",
		"Commands not taken for lack of room (released upstream: the cloud keeps them).", nil, nil)
	descCmdReceived = prometheus.NewDesc("shadowgw_commands_received_total",
		"Commands taken from the cloud and committed since the start.", nil, nil)
	descCmdSent = prometheus.NewDesc("shadowgw_commands_sent_total",
		"Command deliveries sent to devices since the start, sent again ones included.", nil, nil)
)

// commandCollector exports the commands' metrics.
type commandCollector struct{ m *monitor }

func (commandCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCmdQueued, descCmdOldest, descCmdDelivered, descCmdExpired,
		descCmdDead, descCmdSuperseded, descCmdRefused, descCmdReceived, descCmdSent} {
		ch <- d
	}
}

func (c commandCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.m.p
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	if qs, err := p.Store.CommandQueues(); err != nil {
		ch <- prometheus.NewInvalidMetric(descCmdQueued, err)
	} else {
		for _, q := range qs {
			if q.Messages == 0 {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descCmdQueued, prometheus.GaugeValue, float64(q.Messages), q.Device)
			ch <- prometheus.MustNewConstMetric(descCmdOldest, prometheus.GaugeValue, age(c.m.now(), q.Oldest).Seconds(), q.Device)
		}
	}
	s := p.Store.CommandStats()
	counter(descCmdDelivered, s.Delivered)
	counter(descCmdExpired, s.Expired)
	counter(descCmdDead, s.DeadLettered)
	counter(descCmdSuperseded, s.Superseded)
	counter(descCmdRefused, s.Refused)
	if p.Uplink != nil {
		counter(descCmdReceived, p.Uplink.CommandStats().Received)
	}
	counter(descCmdSent, p.Edge.CommandStats().Sent)
}
