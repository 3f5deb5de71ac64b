package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shadowgw/shadowgw/uplink"
)

// printStatus writes r for a person.
func printStatus(w io.Writer, r statusReport) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	ready := "ready"
	if !r.Ready {
		ready = "NOT READY: " + r.NotReady
	}
	fmt.Fprintf(w, "shadowgw %s, pid %d, up %s, %s\n", r.Version, r.PID, roundDuration(r.Time.Sub(r.Started)), ready)
	for _, p := range r.Problems {
		line("PROBLEM", "%s", p)
	}

	u := r.Uplink
	switch {
	case !u.Configured:
		line("uplink", "none configured: messages are kept until one is")
	case u.State == uplink.StateConnected.String():
		line("uplink", "connected to %s since %s (%s)", u.Endpoint, clock(u.ConnectedSince), roundDuration(r.Time.Sub(u.ConnectedSince)))
	case u.State == uplink.StateWaiting.String():
		line("uplink", "DOWN: %s unreachable after %d attempt(s); next attempt in %s", u.Endpoint, u.Failures, roundDuration(max(0, u.NextRetry.Sub(r.Time))))
	default:
		line("uplink", "%s to %s", u.State, u.Endpoint)
	}
	if u.LastError != "" {
		line("", "last error %s (%s ago): %s", clock(u.LastErrorAt), roundDuration(r.Time.Sub(u.LastErrorAt)), u.LastError)
	}
	if u.Configured {
		line("", "forwarded %d, dead-lettered %d, released %d, in flight %d", u.Forwarded, u.DeadLettered, u.Released, u.InFlight)
	}

	d := r.Devices
	line("devices", "%d connected; %d connections since start, %d refused", d.Connected, d.ConnectionsTotal, d.Refused)
	line("", "received %d messages (%s), rejected %d, dropped %d", d.Messages, formatBytes(d.Bytes), d.Rejected, d.Dropped)
	printMQTT(line, r.MQTT)

	for i, rt := range r.Routes {
		label := ""
		if i == 0 {
			label = "backlog"
		}
		line(label, "%s", routeLine(rt))
	}
	printDirect(w, r.Direct)
	printCommands(w, r.Commands)
	if r.DeadLetters.Messages > 0 {
		line("dead letters", "%d messages, %s", r.DeadLetters.Messages, formatBytes(r.DeadLetters.Bytes))
	}
	if l := r.Store.AckLatency; l.Count > 0 {
		line("durable in", "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d messages, last minutes; group commit)", l.P50ms, l.P99ms, l.MaxMs, l.Count)
	}
	if r.Store.DroppedTotal > 0 || r.Store.ExpiredTotal > 0 {
		line("", "ever dropped to make room %d, expired %d", r.Store.DroppedTotal, r.Store.ExpiredTotal)
	}

	rt := r.Rates
	line("rates", "in %.1f msg/s (%s/s), out %.1f msg/s, over the last %s", rt.InMessagesPerSecond,
		formatBytes(uint64(rt.InBytesPerSecond)), rt.OutMessagesPerSecond, roundDuration(time.Duration(rt.WindowSeconds*float64(time.Second))))
	switch {
	case rt.TimeToEmptySeconds == nil:
		line("", "backlog not shrinking")
	case *rt.TimeToEmptySeconds == 0:
		line("", "backlog empty")
	default:
		line("", "backlog empty in about %s at these rates", roundDuration(time.Duration(*rt.TimeToEmptySeconds*float64(time.Second))))
	}

	k := r.Disk
	if k.Error != "" {
		line("disk", "%s: %s", k.Dir, k.Error)
	} else {
		pct := 0.0
		if k.SizeBytes > 0 {
			pct = 100 * float64(k.FreeBytes) / float64(k.SizeBytes)
		}
		line("disk", "%s: %s free of %s (%.0f%%); store file %s", k.Dir, formatBytes(k.FreeBytes), formatBytes(k.SizeBytes), pct, formatBytes(uint64(k.StoreFileBytes)))
	}
	if k.WrittenToday != nil && k.WrittenSinceStart != nil {
		line("", "written to disk: %s today, %s since start", formatBytes(*k.WrittenToday), formatBytes(*k.WrittenSinceStart))
	}

	if len(r.Inputs) == 0 {
		line("inputs", "none")
	}
	for i, in := range r.Inputs {
		label := ""
		if i == 0 {
			label = "inputs"
		}
		last := "no sample yet"
		if !in.LastSample.IsZero() {
			last = "last sample " + roundDuration(r.Time.Sub(in.LastSample)).String() + " ago"
		}
		if in.LastError != "" {
			last += "; " + in.LastError
		}
		line(label, "%s (%s): %s, %d samples, %s", in.Name, in.Kind, in.State, in.Samples, last)
	}
}

// routeLine describes a route on one line: what configures it, then what it holds.
func routeLine(rt routeReport) string {
	var b strings.Builder
	how := []string{fmt.Sprintf("priority %d", rt.Priority), rt.WhenFull}
	if rt.MaxMessages > 0 {
		how = append(how, fmt.Sprintf("max %d messages", rt.MaxMessages))
	}
	if rt.MaxBytes > 0 {
		how = append(how, "max "+formatBytes(rt.MaxBytes))
	}
	if rt.Orphan {
		how = []string{"not configured: emptied into the configured routes, takes nothing new"}
	}
	fmt.Fprintf(&b, "%s (%s): %d messages, %s", rt.Name, strings.Join(how, ", "), rt.Messages, formatBytes(rt.Bytes))
	if !rt.OldestReceived.IsZero() {
		b.WriteString(", oldest " + roundDuration(time.Duration(rt.OldestAgeSeconds*float64(time.Second))).String())
	}
	if rt.Dropped > 0 {
		fmt.Fprintf(&b, ", dropped %d", rt.Dropped)
	}
	if rt.FullReason != "" {
		b.WriteString(", FULL (" + rt.FullReason + ")")
	}
	return b.String()
}

// clock writes a time of day, with the date when it is not today.
func clock(t time.Time) string {
	t = t.Local()
	if t.Format(time.DateOnly) == time.Now().Format(time.DateOnly) {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

// roundDuration keeps a duration readable: milliseconds below a second, tenths of
// seconds below a minute, seconds above.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// formatBytes writes n with a 1024-based unit.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
