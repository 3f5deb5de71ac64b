package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeBytes returns the process's write_bytes from /proc/self/io (bytes it
// caused to be written to storage), or -1 where unavailable.
func writeBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// cpuTime returns the CPU time the process used so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendAsync measures durable appends of 256-byte messages with
// appends outstanding, as devices with link credit produce them: producers
// each keep window appends in flight through AppendAsync (one device with
// the gateway's default credit, and 64). Besides msgs/s, ack latency and
// x_fsync it reports the process's CPU time per message and
// disk-bytes/msg-byte, the bytes written to storage (/proc/self/io) per
// payload byte.
func BenchmarkAppendAsync(b *testing.B) {
	for _, c := range []struct{ producers, window int }{{1, 256}, {64, 16}, {64, 256}} {
		b.Run(fmt.Sprintf("producers=%d/window=%d", c.producers, c.window), func(b *testing.B) {
			producers, window := c.producers, c.window
			dir := benchDir(b)
			ceiling := fsyncRate(b, dir, 200*time.Millisecond)
			s, err := Open(filepath.Join(dir, "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := make([]byte, 256)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			per := max(b.N/producers, 1)
			lat := make([][]time.Duration, producers)
			var wg sync.WaitGroup
			w0, cpu0 := writeBytes(), cpuTime()
			b.ResetTimer()
			start := time.Now()
			for p := range producers {
				wg.Go(func() {
					sem := make(chan struct{}, window)
					mine := make([]time.Duration, per)
					var inner sync.WaitGroup
					for i := range per {
						sem <- struct{}{}
						inner.Add(1)
						t0 := time.Now()
						s.AppendAsync(&Message{Address: "bench", Source: "producer", Payload: payload}, func(err error) {
							if err != nil {
								b.Error(err)
							}
							mine[i] = time.Since(t0)
							<-sem
							inner.Done()
						})
					}
					inner.Wait()
					lat[p] = mine
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			w1 := writeBytes()
			all := slices.Concat(lat...)
			slices.Sort(all)
			rate := float64(len(all)) / elapsed.Seconds()
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(float64(percentile(all, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(all, 99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(len(all))/float64(max(s.Stats().Commits, 1)), "msgs/commit")
			b.ReportMetric(rate/ceiling, "x_fsync")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(len(all)), "cpu-µs/msg")
			if w0 >= 0 {
				b.ReportMetric(float64(w1-w0)/float64(len(all)*len(payload)), "disk-bytes/msg-byte")
			}
		})
	}
}

// BenchmarkDrain measures the uplink's loop on a backlog: Read 256, Delete
// them, with real fsyncs.
func BenchmarkDrain(b *testing.B) {
	dir := benchDir(b)
	s, err := Open(filepath.Join(dir, "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 256)
	var wg sync.WaitGroup
	for range b.N {
		wg.Add(1)
		s.AppendAsync(&Message{Address: "bench", Payload: payload}, func(error) { wg.Done() })
	}
	wg.Wait()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	start := time.Now()
	var after uint64
	n := 0
	for n < b.N {
		msgs, err := s.Read(after, 256)
		if err != nil || len(msgs) == 0 {
			b.Fatal(err, len(msgs))
		}
		ids := make([]uint64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.Seq
		}
		if err := s.Delete(ids...); err != nil {
			b.Fatal(err)
		}
		after = ids[len(ids)-1]
		n += len(msgs)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkCompact1M stores 1,000,000 messages of 256 bytes without fsync,
// drains them, and reports the file size before and after compaction and
// the pause. Run it alone: go test -run '^$' -bench Compact1M -benchtime 1x.
func BenchmarkCompact1M(b *testing.B) {
	for range b.N {
		dir := benchDir(b)
		path := filepath.Join(dir, "bench.db")
		s, err := Open(path, Options{NoSync: true, CompactMinSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		const n = 1_000_000
		payload := make([]byte, 256)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			s.AppendAsync(&Message{Address: "bench", Source: "dev", Payload: payload}, func(error) { wg.Done() })
		}
		wg.Wait()
		full, _ := os.Stat(path)
		ids := make([]uint64, 0, 4096)
		for seq := uint64(1); seq <= n; seq++ {
			ids = append(ids, seq)
			if len(ids) == cap(ids) || seq == n {
				if err := s.Delete(ids...); err != nil {
					b.Fatal(err)
				}
				ids = ids[:0]
			}
		}
		drained, _ := os.Stat(path)
		c, err := s.Compact()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(full.Size())/(1<<20), "MiB-full")
		b.ReportMetric(float64(drained.Size())/(1<<20), "MiB-drained")
		b.ReportMetric(float64(c.After)/(1<<20), "MiB-compacted")
		b.ReportMetric(float64(c.Pause.Microseconds()), "pause-µs")
		s.Close()
	}
}
