package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runs is what TestCost and TestRate share: the messages per run and the rounds from
// the environment, the gateway builds they alternate, and every run's figures per
// message, reported as medians at the end.
type runs struct {
	t         *testing.T
	n, rounds int
	builds    []string          // "gateway", and "baseline" with SHADOWGW_BENCH_BASELINE
	bins      map[string]string // build name → shadowgw binary
	results   map[string][]result
}

// result is one run's figures per message: the sender's CPU (µs), the broker's CPU
// (µs), read system calls and bytes read, and the rate (messages/s).
type result struct{ cpu, broker, reads, bytes, rate float64 }

// newRuns reads SHADOWGW_BENCH_COST (messages per run, a multiple of 4 for the load
// tool's 4 devices), SHADOWGW_BENCH_ROUNDS (default 3) and SHADOWGW_BENCH_BASELINE; it
// skips the test, saying why, unless SHADOWGW_BENCH_COST is set.
func newRuns(t *testing.T, skip string) *runs {
	n, _ := strconv.Atoi(os.Getenv("SHADOWGW_BENCH_COST"))
	if n /= 4; n <= 0 {
		t.Skip(skip)
	}
	r := &runs{t: t, n: n * 4, rounds: 3, builds: []string{"gateway"}, bins: map[string]string{"gateway": gatewayBin}, results: map[string][]result{}}
	if s := os.Getenv("SHADOWGW_BENCH_ROUNDS"); s != "" {
		r.rounds, _ = strconv.Atoi(s)
	}
	if base := os.Getenv("SHADOWGW_BENCH_BASELINE"); base != "" {
		r.builds = append(r.builds, "baseline")
		r.bins["baseline"] = base
	}
	return r
}

// record keeps and logs a run of name: the sender's CPU time, the broker's samples bb
// and ba taken around the run, and its duration.
func (r *runs) record(name string, cpu time.Duration, bb, ba procSample, seconds float64) {
	n := float64(r.n)
	res := result{cpu: float64(cpu.Microseconds()) / n, broker: float64((ba.cpu - bb.cpu).Microseconds()) / n,
		reads: float64(ba.reads-bb.reads) / n, bytes: float64(ba.readBytes-bb.readBytes) / n, rate: n / seconds}
	r.results[name] = append(r.results[name], res)
	la, _ := os.ReadFile("/proc/loadavg")
	r.t.Logf("%-16s %7.1f µs/msg  broker %6.1f µs/msg %5.3f reads %5.1f B/msg  %8.0f msg/s  load %s",
		name, res.cpu, res.broker, res.reads, res.bytes, res.rate, strings.Join(strings.Fields(string(la))[:3], " "))
}

// report logs the medians of the runs of the fixed names, then of each build's runs
// of each kind ("gateway online", ...), as ratios to the first fixed name's.
func (r *runs) report(title string, fixed []string, kinds ...string) {
	names := fixed
	for _, b := range r.builds {
		for _, k := range kinds {
			names = append(names, b+" "+k)
		}
	}
	r.t.Logf("medians of %d rounds, %d messages each, %s:", r.rounds, r.n, title)
	med := func(name string, f func(result) float64) float64 { return median(r.results[name], f) }
	ref := fixed[0]
	refCPU, refBroker, refRate := med(ref, func(x result) float64 { return x.cpu }), med(ref, func(x result) float64 { return x.broker }), med(ref, func(x result) float64 { return x.rate })
	for _, name := range names {
		if len(r.results[name]) == 0 {
			continue // a kind this build does not run
		}
		cpu, broker, rate := med(name, func(x result) float64 { return x.cpu }), med(name, func(x result) float64 { return x.broker }), med(name, func(x result) float64 { return x.rate })
		reads, bytes := med(name, func(x result) float64 { return x.reads }), med(name, func(x result) float64 { return x.bytes })
		r.t.Logf("%-16s %7.1f µs/msg (%.1fx %s)  broker %6.1f µs/msg (%.2fx) %5.3f reads %5.1f B/msg  %8.0f msg/s (%.2fx)",
			name, cpu, cpu/refCPU, ref, broker, broker/refBroker, reads, bytes, rate, rate/refRate)
	}
}

// median returns the median of f over rs.
func median[T any](rs []T, f func(T) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// viaKinds returns the via runs of build: "via", and "via bare" (source-annotation =
// none) for this build, not a baseline that may not know the setting.
func viaKinds(build string) []string {
	if build == "gateway" {
		return []string{"via", "via bare"}
	}
	return []string{"via"}
}
