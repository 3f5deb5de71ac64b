package main

import (
	"fmt"
	"io"
	"time"

	"github.com/shadowgw/shadowgw/store"
)

// commandsReport is the commands part of the status: the device queues and the totals.
type commandsReport struct {
	store.CommandStats
	Received uint64         `json:"received"` // taken from the cloud since the start
	Sent     uint64         `json:"sent"`     // deliveries sent to devices since the start
	Queues   []commandQueue `json:"queues,omitempty"`
}

type commandQueue struct {
	Device      string  `json:"device"`
	Messages    uint64  `json:"messages"`
	Bytes       uint64  `json:"bytes"`
	OldestAge   float64 `json:"oldest_age_seconds"`
	DeadLetters uint64  `json:"dead_letters"`
}

// commandsStatus fills the report, nil when no command was ever seen.
func (m *monitor) commandsStatus(now time.Time) *commandsReport {
	p := m.p
	r := &commandsReport{CommandStats: p.Store.CommandStats(), Sent: p.Edge.CommandStats().Sent}
	if p.Uplink != nil {
		r.Received = p.Uplink.CommandStats().Received
	}
	qs, _ := p.Store.CommandQueues()
	for _, q := range qs {
		r.Queues = append(r.Queues, commandQueue{Device: q.Device, Messages: q.Messages, Bytes: q.Bytes,
			OldestAge: age(now, q.Oldest).Seconds(), DeadLetters: q.DeadLetters})
	}
	if r.Messages == 0 && r.DeadLetters == 0 && r.Delivered == 0 && r.Expired == 0 && r.Received == 0 && r.Sent == 0 {
		return nil
	}
	return r
}

// printCommands prints the commands lines of `shadowgw status`.
func printCommands(w io.Writer, c *commandsReport) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "%-12s %d queued for %d device(s), %d delivered, %d expired, %d dead-lettered (%d kept), %d refused for room\n",
		"commands", c.Messages, c.Devices, c.Delivered, c.Expired, c.DeadLettered, c.CommandStats.DeadLetters, c.Refused)
	for i, q := range c.Queues {
		if i == 10 {
			fmt.Fprintf(w, "%-12s … %d more: shadowgw queue commands\n", "", len(c.Queues)-10)
			break
		}
		fmt.Fprintf(w, "%-12s %s: %d queued, oldest %s, %d dead letters\n", "", q.Device, q.Messages,
			roundDuration(time.Duration(q.OldestAge*float64(time.Second))), q.DeadLetters)
	}
}
