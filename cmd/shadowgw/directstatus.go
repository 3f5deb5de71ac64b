package main

import (
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
)

// directReport is one direct route in /status: its cloud addresses and the outcomes
// its deliveries got. Nothing of it is queued.
type directReport struct {
	Name     string `json:"name"`
	Targets  int    `json:"targets"` // cloud addresses in use
	Ready    int    `json:"ready"`   // of them, with their link attached (devices get credit)
	InFlight int64  `json:"in_flight"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	Released uint64 `json:"released"`
	Modified uint64 `json:"modified"`
	Settled  uint64 `json:"presettled"` // pre-settled deliveries passed on (at most once)
}

// directCommandsReport is the name of the report of the direct commands (cloud →
// device) among the direct routes in /status: its targets are the device links open,
// ready those with their receiver attached upstream.
const directCommandsReport = "commands (cloud → device)"

// directStatus returns the direct routes' reports, and the direct commands' when some
// device's commands are direct; nil if there are none.
func directStatus(p parts) []directReport {
	out := directRouteStatus(p)
	if p.Uplink != nil && p.Uplink.DirectCommands() != nil {
		up := p.Uplink.DirectCommands().Stats()
		ds := p.Edge.DirectCommandStats()
		out = append(out, directReport{Name: directCommandsReport, Targets: up.Links, Ready: int(up.Attached), InFlight: ds.InFlight,
			Accepted: ds.Accepted, Rejected: ds.Rejected, Released: ds.Released, Modified: ds.Modified})
	}
	return out
}

// directRouteStatus returns the direct routes' reports, nil if there are none.
func directRouteStatus(p parts) []directReport {
	if p.Uplink == nil {
		return nil
	}
	var out []directReport
	for _, r := range p.Uplink.Direct().Status() {
		out = append(out, directReport{Name: r.Name, Targets: r.Targets, Ready: r.Ready, InFlight: r.InFlight,
			Accepted: r.Accepted, Rejected: r.Rejected, Released: r.Released, Modified: r.Modified, Settled: r.Settled})
	}
	return out
}

// printDirect writes the direct routes for a person.
func printDirect(w io.Writer, rs []directReport) {
	for i, r := range rs {
		label := ""
		if i == 0 {
			label = "direct"
		}
		fmt.Fprintf(w, "%-12s %s: %d/%d links up, in flight %d; accepted %d, rejected %d, released %d, modified %d, pre-settled %d\n",
			label, r.Name, r.Ready, r.Targets, r.InFlight, r.Accepted, r.Rejected, r.Released, r.Modified, r.Settled)
	}
}

var (
	descDirectInFlight = prometheus.NewDesc("shadowgw_direct_in_flight",
		"Deliveries of a direct route awaiting the cloud's outcome (nothing of them is stored).", []string{"route"}, nil)
	descDirectOutcomes = prometheus.NewDesc("shadowgw_direct_outcomes_total",
		"Outcomes the devices got on a direct route: the cloud's, or released while its link was down.", []string{"route", "outcome"}, nil)
	descDirectLinks = prometheus.NewDesc("shadowgw_direct_links_up",
		"Cloud links of a direct route attached now; devices get credit only for these.", []string{"route"}, nil)

	descDirectCmdInFlight = prometheus.NewDesc("shadowgw_direct_commands_in_flight",
		"Direct commands (cloud → device, [commands] direct) sent to devices and awaiting their outcome.", nil, nil)
	descDirectCmdOutcomes = prometheus.NewDesc("shadowgw_direct_commands_outcomes_total",
		"The devices' outcomes of direct commands, each settled upstream as it is; released includes those outstanding when a device went.", []string{"outcome"}, nil)
	descDirectCmdReceived = prometheus.NewDesc("shadowgw_direct_commands_received_total",
		"Direct commands taken from the cloud (only while their device's receiver is attached).", nil, nil)
	descDirectCmdLinks = prometheus.NewDesc("shadowgw_direct_commands_links_up",
		"Receivers attached upstream for the devices whose commands are direct.", nil, nil)
)

// collectDirectCommands adds the direct command links' metrics, if any device's
// commands are direct.
func collectDirectCommands(ch chan<- prometheus.Metric, p parts) {
	if p.Uplink == nil || p.Uplink.DirectCommands() == nil {
		return
	}
	up := p.Uplink.DirectCommands().Stats()
	ds := p.Edge.DirectCommandStats()
	ch <- prometheus.MustNewConstMetric(descDirectCmdInFlight, prometheus.GaugeValue, float64(ds.InFlight))
	ch <- prometheus.MustNewConstMetric(descDirectCmdReceived, prometheus.CounterValue, float64(up.Received))
	ch <- prometheus.MustNewConstMetric(descDirectCmdLinks, prometheus.GaugeValue, float64(up.Attached))
	for _, o := range []struct {
		name string
		n    uint64
	}{{"accepted", ds.Accepted}, {"rejected", ds.Rejected}, {"released", ds.Released}, {"modified", ds.Modified}} {
		ch <- prometheus.MustNewConstMetric(descDirectCmdOutcomes, prometheus.CounterValue, float64(o.n), o.name)
	}
}

// collectDirect adds the direct routes' metrics.
func collectDirect(ch chan<- prometheus.Metric, p parts) {
	collectDirectCommands(ch, p)
	for _, r := range directRouteStatus(p) {
		ch <- prometheus.MustNewConstMetric(descDirectInFlight, prometheus.GaugeValue, float64(r.InFlight), r.Name)
		ch <- prometheus.MustNewConstMetric(descDirectLinks, prometheus.GaugeValue, float64(r.Ready), r.Name)
		for _, o := range []struct {
			name string
			n    uint64
		}{{"accepted", r.Accepted}, {"rejected", r.Rejected}, {"released", r.Released}, {"modified", r.Modified}, {"presettled", r.Settled}} {
			ch <- prometheus.MustNewConstMetric(descDirectOutcomes, prometheus.CounterValue, float64(o.n), r.Name, o.name)
		}
	}
}
