package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// report is the result of a run, printed as text or JSON. Rates are per second, sizes
// are bytes, latencies are milliseconds.
type report struct {
	Options options `json:"options"`
	Run     string  `json:"run"`

	Sent                 int            `json:"sent,omitempty"`
	Accepted             int            `json:"accepted,omitempty"`
	Refused              int            `json:"refused,omitempty"` // outcomes other than accepted
	Outcomes             map[string]int `json:"refused_outcomes,omitempty"`
	Errors               []string       `json:"errors,omitempty"`
	SendSeconds          float64        `json:"send_seconds,omitempty"`
	IngestPerSecond      float64        `json:"ingest_messages_per_second,omitempty"`
	IngestBytesPerSecond float64        `json:"ingest_bytes_per_second,omitempty"`
	AckLatency           *latency       `json:"ack_latency,omitempty"` // send → the gateway's accepted

	Cloud      *cloudReport `json:"cloud,omitempty"`
	Lost       int          `json:"lost"`
	Duplicated int          `json:"duplicated"`

	Gateway *gatewayReport `json:"gateway,omitempty"`
	Idle    *idleReport    `json:"idle,omitempty"`
}

type cloudReport struct {
	Arrived    int      `json:"arrived"` // distinct messages of this run
	Lost       int      `json:"lost"`
	Duplicated int      `json:"duplicated"` // arrivals beyond the first
	Stale      int      `json:"stale"`      // messages of other runs, consumed and ignored
	Seconds    float64  `json:"seconds"`    // first send → last arrival
	PerSecond  float64  `json:"messages_per_second"`
	Latency    *latency `json:"latency,omitempty"` // device send → cloud arrival
	Error      string   `json:"error,omitempty"`
}

type gatewayReport struct {
	PID               int     `json:"pid"`
	RSSBytes          uint64  `json:"rss_bytes"`      // VmRSS at the end
	PeakRSSBytes      uint64  `json:"peak_rss_bytes"` // VmHWM: the highest since it started
	CPUSeconds        float64 `json:"cpu_seconds"`    // user + system during the run
	CPUUtilization    float64 `json:"cpu_utilization"`
	CPUMicrosPerMsg   float64 `json:"cpu_microseconds_per_message,omitempty"`
	MeasuredSeconds   float64 `json:"measured_seconds"`
	CPUBeforeSeconds  float64 `json:"cpu_before_seconds"`
	RSSBeforeBytes    uint64  `json:"rss_before_bytes"`
	MessagesMeasured  int     `json:"messages_measured"`
	CPUTicksPerSecond int     `json:"cpu_ticks_per_second"`
}

type idleReport struct {
	Connections        int     `json:"connections"`
	Failed             int     `json:"failed"`
	FirstError         string  `json:"first_error,omitempty"`
	OpenSeconds        float64 `json:"open_seconds"`
	HoldSeconds        float64 `json:"hold_seconds"`
	RSSBeforeBytes     uint64  `json:"rss_before_bytes,omitempty"`
	RSSAfterBytes      uint64  `json:"rss_after_bytes,omitempty"`
	PeakRSSBytes       uint64  `json:"peak_rss_bytes,omitempty"`
	BytesPerConnection uint64  `json:"bytes_per_connection,omitempty"`
}

// latency is a distribution of durations, in milliseconds.
type latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// newLatency summarises ds, which it sorts; nil for none.
func newLatency(ds []time.Duration) *latency {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return &latency{
		Samples: len(ds),
		P50:     ms(percentile(ds, 0.50)),
		P90:     ms(percentile(ds, 0.90)),
		P99:     ms(percentile(ds, 0.99)),
		Max:     ms(ds[len(ds)-1]),
	}
}

// percentile returns the nearest-rank q-quantile of sorted ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// addSend records what the devices did.
func (r *report) addSend(o options, s *sendResult) {
	var acks []time.Duration
	r.Outcomes = map[string]int{}
	for _, d := range s.devices {
		r.Sent += d.sent
		r.Refused += d.refused
		for k, v := range d.outcomes {
			r.Outcomes[k] += v
		}
		for _, ok := range d.accepted {
			if ok {
				r.Accepted++
			}
		}
		acks = append(acks, d.acks...)
		if d.err != nil {
			r.Errors = append(r.Errors, d.err.Error())
		}
	}
	if o.Settled {
		r.Accepted = 0 // unknown: nobody answers pre-settled messages
	}
	r.SendSeconds = s.end.Sub(s.start).Seconds()
	if r.SendSeconds > 0 {
		n := r.Accepted
		if o.Settled {
			n = r.Sent
		}
		r.IngestPerSecond = float64(n) / r.SendSeconds
		r.IngestBytesPerSecond = float64(n) * float64(o.Size) / r.SendSeconds
	}
	r.AckLatency = newLatency(acks)
}

// addCloud compares what arrived with what was expected.
func (r *report) addCloud(s *sendResult, a arrivals) {
	c := &cloudReport{Stale: a.stale}
	if a.err != nil {
		c.Error = a.err.Error()
	}
	for dev, exp := range s.expected(r.Options.Settled) {
		got := a.counts[int64(dev)]
		for seq, want := range exp {
			n := 0
			if seq < len(got) {
				n = int(got[seq])
			}
			switch {
			case want && n == 0:
				c.Lost++
			case n > 1:
				c.Duplicated += n - 1
			}
		}
	}
	c.Arrived = len(a.latencies)
	if !a.last.IsZero() {
		c.Seconds = a.last.Sub(s.start).Seconds()
		if c.Seconds > 0 {
			c.PerSecond = float64(c.Arrived) / c.Seconds
		}
	}
	c.Latency = newLatency(a.latencies)
	r.Cloud = c
	r.Lost, r.Duplicated = c.Lost, c.Duplicated
}

// gatewayUsage compares two readings of the gateway process; nil without them.
func gatewayUsage(pid int, before, after procSample, messages int) *gatewayReport {
	if !before.ok || !after.ok {
		return nil
	}
	g := &gatewayReport{
		PID:               pid,
		RSSBytes:          after.rss,
		PeakRSSBytes:      after.peakRSS,
		CPUSeconds:        (after.cpu - before.cpu).Seconds(),
		MeasuredSeconds:   after.at.Sub(before.at).Seconds(),
		CPUBeforeSeconds:  before.cpu.Seconds(),
		RSSBeforeBytes:    before.rss,
		MessagesMeasured:  messages,
		CPUTicksPerSecond: userHZ,
	}
	if g.MeasuredSeconds > 0 {
		g.CPUUtilization = g.CPUSeconds / g.MeasuredSeconds
	}
	if messages > 0 {
		g.CPUMicrosPerMsg = g.CPUSeconds * 1e6 / float64(messages)
	}
	return g
}

// print writes r for a person.
func (r *report) print(w io.Writer) error {
	var b strings.Builder
	o := r.Options
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	if r.Idle != nil {
		i := r.Idle
		line("idle", "%d connections open (%d failed) in %.1fs, held %.1fs", i.Connections, i.Failed, i.OpenSeconds, i.HoldSeconds)
		if i.FirstError != "" {
			line("", "first error: %s", i.FirstError)
		}
		if i.RSSAfterBytes > 0 {
			line("gateway", "RSS %s before, %s with them (peak %s): %.1f KiB per idle connection",
				mib(i.RSSBeforeBytes), mib(i.RSSAfterBytes), mib(i.PeakRSSBytes), float64(i.BytesPerConnection)/1024)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}

	mode := "unsettled, window " + fmt.Sprint(o.Window)
	if o.Settled {
		mode = "pre-settled"
	}
	pace := "as fast as possible"
	if o.Rate > 0 {
		pace = fmt.Sprintf("at %.0f msg/s", o.Rate)
	}
	durable := ""
	if o.Durable {
		durable = ", durable"
	}
	fmt.Fprintf(&b, "shadowgw-bench run %s: %d devices, %d B bodies, %s%s, %s\n", r.Run, o.Devices, o.Size, mode, durable, pace)
	if o.Settled {
		line("ingest", "%d sent pre-settled in %.2fs: %.0f msg/s (%s/s)", r.Sent, r.SendSeconds, r.IngestPerSecond, mib(uint64(r.IngestBytesPerSecond)))
	} else {
		line("ingest", "%d sent, %d accepted, %d refused in %.2fs: %.0f msg/s (%s/s)", r.Sent, r.Accepted, r.Refused, r.SendSeconds,
			r.IngestPerSecond, mib(uint64(r.IngestBytesPerSecond)))
	}
	if len(r.Outcomes) > 0 {
		keys := make([]string, 0, len(r.Outcomes))
		for k := range r.Outcomes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line("", "refused as %s: %d", k, r.Outcomes[k])
		}
	}
	if l := r.AckLatency; l != nil {
		line("ack", "p50 %s  p90 %s  p99 %s  max %s  (send → gateway accepted, %d samples)", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), l.Samples)
	}
	for _, e := range r.Errors {
		line("error", "%s", e)
	}
	if c := r.Cloud; c != nil {
		line("cloud", "%d arrived, %d lost, %d duplicated (%d stale ignored); last %.2fs after the first send: %.0f msg/s end to end",
			c.Arrived, c.Lost, c.Duplicated, c.Stale, c.Seconds, c.PerSecond)
		if l := c.Latency; l != nil {
			line("latency", "p50 %s  p90 %s  p99 %s  max %s  (device send → cloud arrival)", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
		}
		if c.Error != "" {
			line("", "consumer: %s", c.Error)
		}
	}
	if g := r.Gateway; g != nil {
		line("gateway", "pid %d: RSS %s at the end (peak %s); CPU %.2fs in %.2fs (%.0f%% of a core, %.0f µs/message)",
			g.PID, mib(g.RSSBytes), mib(g.PeakRSSBytes), g.CPUSeconds, g.MeasuredSeconds, 100*g.CPUUtilization, g.CPUMicrosPerMsg)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ms writes milliseconds with a sensible precision.
func ms(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.2fs", v/1000)
}
