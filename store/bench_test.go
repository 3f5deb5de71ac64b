package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchDirEnv names a directory for benchmark files, for machines whose
// temporary directory is a tmpfs (where fsync costs nothing).
const benchDirEnv = "SHADOWGW_BENCH_DIR"

// benchDir returns a fresh directory on the disk under test.
func benchDir(b *testing.B) string {
	b.Helper()
	base := os.Getenv(benchDirEnv)
	if base == "" {
		dir := b.TempDir()
		if onTmpfs(dir) {
			b.Logf("warning: %s is a tmpfs, fsync is free there; set %s to a directory on the real disk", dir, benchDirEnv)
		}
		return dir
	}
	dir, err := os.MkdirTemp(base, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fsyncRate measures plain write+fsync calls per second of a small file in
// dir: the ceiling of a store that fsyncs once per message.
func fsyncRate(b *testing.B, dir string, d time.Duration) float64 {
	b.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "fsync"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	start := time.Now()
	n := 0
	for ; time.Since(start) < d; n++ {
		if _, err := f.WriteAt(buf, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkFsync measures write+fsync of 256 bytes in a small file, the cost
// a one-fsync-per-message store would pay per message.
func BenchmarkFsync(b *testing.B) {
	dir := benchDir(b)
	f, err := os.OpenFile(filepath.Join(dir, "fsync"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fsyncs/s")
}

// BenchmarkAppend measures durable appends of 256-byte messages by 1, 16 and
// 64 concurrent producers. Besides ns/op it reports msgs/s, the median and
// 99th percentile time until the append was acknowledged, messages per
// commit, and x_fsync: msgs/s divided by the plain fsyncs/s of the same
// directory, measured just before (above 1 means group commit beats one
// fsync per message).
//
// The cases with max-delay show what Options.MaxDelay (store max-delay) buys
// when every producer waits for its acknowledgement: fuller commits for a
// bounded wait.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		producers int
		delay     time.Duration
	}{{1, 0}, {16, 0}, {64, 0}, {64, time.Millisecond}, {64, 3 * time.Millisecond}} {
		name := fmt.Sprintf("producers=%d", c.producers)
		if c.delay > 0 {
			name += fmt.Sprintf("/max-delay=%v", c.delay)
		}
		producers := c.producers
		b.Run(name, func(b *testing.B) {
			dir := benchDir(b)
			ceiling := fsyncRate(b, dir, 200*time.Millisecond)
			s, err := Open(filepath.Join(dir, "bench.db"), Options{MaxDelay: c.delay})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := make([]byte, 256)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()

			var left atomic.Int64
			left.Store(int64(b.N))
			lat := make([][]time.Duration, producers)
			var wg sync.WaitGroup
			before := s.Stats()
			b.ResetTimer()
			start := time.Now()
			for p := range producers {
				wg.Go(func() {
					mine := make([]time.Duration, 0, b.N/producers+1)
					for left.Add(-1) >= 0 {
						m := Message{Address: "bench", Source: "producer", Payload: payload}
						t0 := time.Now()
						if err := s.Append(context.Background(), &m); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					lat[p] = mine
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()

			all := slices.Concat(lat...)
			slices.Sort(all)
			rate := float64(len(all)) / elapsed.Seconds()
			commits := s.Stats().Commits - before.Commits
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(float64(percentile(all, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(all, 99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(len(all))/float64(max(commits, 1)), "msgs/commit")
			b.ReportMetric(rate/ceiling, "x_fsync")
		})
	}
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}
