package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestDrainMemory reports the peak RSS of a gateway that drains large messages to
// RabbitMQ: the load tool's 4 devices fill a store with SHADOWGW_BENCH_LARGE
// messages (a multiple of 4) of SHADOWGW_BENCH_LARGE_SIZE bytes (default 1,000,000,
// just under the default max-message-size) without an uplink, then a gateway with
// the uplink is started on it and runs until RabbitMQ holds them all. What it holds
// for that is the store's read batch and the payloads awaiting the cloud's
// outcomes; both are bounded by bytes, not only by count. SHADOWGW_BENCH_BASELINE
// alternates another build, as for TestCost:
//
//	SHADOWGW_BENCH_LARGE=200 go test -count=1 -run TestDrainMemory -v ./cmd/shadowgw-bench/
//
// Reported, not asserted.
func TestDrainMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SHADOWGW_BENCH_LARGE"))
	if n /= 4; n <= 0 {
		t.Skip("set SHADOWGW_BENCH_LARGE to the number of large messages to measure a drain's memory")
	}
	size := 1000000
	if s := os.Getenv("SHADOWGW_BENCH_LARGE_SIZE"); s != "" {
		size, _ = strconv.Atoi(s)
	}
	builds := []string{"gateway"}
	bins := map[string]string{"gateway": gatewayBin}
	if base := os.Getenv("SHADOWGW_BENCH_BASELINE"); base != "" {
		builds = append(builds, "baseline")
		bins["baseline"] = base
	}
	b := cloudtest.StartRabbitMQ(t)
	dir := t.TempDir()
	pw := b.WritePasswordFile(t)
	conf := writeConf(t, dir, "shadowgw.conf", "[uplink]\naddress-prefix = /queue/\n")
	for round := range 2 {
		for _, name := range builds {
			q := fmt.Sprintf("memory-%s-%d", name, round)
			data := fillStore(t, bins[name], q, n, size, "--durable=true")
			start := time.Now()
			gw := startGateway(t, bins[name], data, "--config", conf, "--uplink", b.URL, "--uplink-ca", b.CAFile, "--uplink-user", b.User, "--uplink-password-file", pw)
			before := readProc(gw.pid())
			// RSS counts the pages of the store's memory-mapped file the drain reads
			// (the page cache's, given back under pressure); the gateway's own memory
			// is RssAnon, sampled while it drains for its peak.
			stop := make(chan struct{})
			peakAnon := make(chan uint64)
			go func() {
				var most uint64
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for {
					most = max(most, readProc(gw.pid()).anon)
					select {
					case <-stop:
						peakAnon <- most
						return
					case <-tick.C:
					}
				}
			}()
			got := b.Receive(t, "/queue/"+q, n*4, 5*time.Minute)
			secs := time.Since(start).Seconds()
			close(stop)
			anon := <-peakAnon
			after := readProc(gw.pid())
			gw.stop()
			t.Logf("%-8s drained %d messages of %d bytes in %.1fs: peak anonymous memory %.1f MiB (%.1f MiB after the start); peak RSS %.1f MiB with the store's mapped file; CPU %.2fs",
				name, len(got), size, secs, float64(anon)/(1<<20), float64(before.anon)/(1<<20), float64(after.peakRSS)/(1<<20), (after.cpu - before.cpu).Seconds())
		}
	}
}
