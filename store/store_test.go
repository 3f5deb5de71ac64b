package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	received := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		msg  Message
	}{
		{"simple", Message{Address: "telemetry", Source: "dev-1", Received: received, Payload: []byte{0x00, 0x53, 0x75, 0xa0, 0x03, 'a', 'b', 'c'}}},
		{"empty payload", Message{Address: "a", Source: "b", Received: received}},
		{"empty strings", Message{Received: received, Payload: []byte("x")}},
		{"unicode address", Message{Address: "/sensors/température/ü", Source: "container:ä", Received: received, Payload: []byte("y")}},
		{"large payload", Message{Address: "big", Source: "dev", Received: received, Payload: bytes.Repeat([]byte{0xa5}, 1<<20)}},
		{"long address", Message{Address: string(bytes.Repeat([]byte("x"), 300)), Source: "dev", Received: received, Payload: []byte("z")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openTest(t, testOptions())
			in := tt.msg
			in.Payload = bytes.Clone(tt.msg.Payload)
			if err := s.Append(context.Background(), &in); err != nil {
				t.Fatalf("Append: %v", err)
			}
			if in.Seq == 0 {
				t.Fatalf("got Seq 0 after Append, want > 0")
			}
			for round := range 2 {
				if round == 1 {
					s = reopen(t, s, path, testOptions())
				}
				got, err := s.Read(0, 10)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if len(got) != 1 {
					t.Fatalf("got %d messages, want 1", len(got))
				}
				want := tt.msg
				want.Seq = in.Seq
				if !equalMessage(got[0], want) {
					t.Errorf("got %+v, want %+v", brief(got[0]), brief(want))
				}
				if err := s.Delete(in.Seq); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				if got := readAll(t, s); len(got) != 0 {
					t.Fatalf("got %d messages after Delete, want 0", len(got))
				}
				// Put it back for the reopened round.
				m := tt.msg
				if err := s.Append(context.Background(), &m); err != nil {
					t.Fatalf("Append: %v", err)
				}
				in.Seq = m.Seq
			}
		})
	}
}

func equalMessage(a, b Message) bool {
	return a.Seq == b.Seq && a.Address == b.Address && a.Source == b.Source &&
		a.Received.Equal(b.Received) && bytes.Equal(a.Payload, b.Payload)
}

func brief(m Message) string {
	return fmt.Sprintf("{Seq:%d Address:%.20q Source:%q Received:%s Payload:%d bytes}",
		m.Seq, m.Address, m.Source, m.Received.Format(time.RFC3339Nano), len(m.Payload))
}

func TestAppendSetsReceived(t *testing.T) {
	s, _ := openTest(t, testOptions())
	before := time.Now()
	m := Message{Address: "a", Payload: []byte("p")}
	if err := s.Append(context.Background(), &m); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[0].Received; r.Before(before) || r.After(time.Now()) {
		t.Errorf("got Received %v, want between %v and now", r, before)
	}
}

func TestRead(t *testing.T) {
	s, _ := openTest(t, testOptions())
	for i := range 10 {
		m := Message{Address: "a", Payload: []byte{byte(i)}}
		if err := s.Append(context.Background(), &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(3, 4, 99); err != nil {
		t.Fatalf("Delete with a missing seq: %v", err)
	}
	tests := []struct {
		name  string
		after uint64
		max   int
		want  []uint64
	}{
		{"all", 0, 100, []uint64{1, 2, 5, 6, 7, 8, 9, 10}},
		{"first two", 0, 2, []uint64{1, 2}},
		{"skips deleted", 2, 2, []uint64{5, 6}},
		{"after a deleted seq", 3, 1, []uint64{5}},
		{"tail", 9, 100, []uint64{10}},
		{"past the end", 10, 100, nil},
		{"max 0", 0, 0, nil},
		{"negative max", 0, -1, nil},
		{"max uint64", ^uint64(0), 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Read(tt.after, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("Read(%d, %d) got seqs %v, want %v", tt.after, tt.max, seqs(got), tt.want)
			}
		})
	}
}

// TestConcurrentProducersOrder checks that the store keeps each producer's
// order and hands out unique, increasing seqs.
func TestConcurrentProducersOrder(t *testing.T) {
	const producers, perProducer = 32, 100
	s, _ := openTest(t, testOptions())
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			var last uint64
			for i := range perProducer {
				m := Message{Address: "a", Source: fmt.Sprint(p), Payload: []byte(fmt.Sprint(i))}
				if err := s.Append(context.Background(), &m); err != nil {
					errs <- err
					return
				}
				if m.Seq <= last {
					errs <- fmt.Errorf("producer %d: got seq %d after %d", p, m.Seq, last)
					return
				}
				last = m.Seq
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := readAll(t, s)
	if len(all) != producers*perProducer {
		t.Fatalf("got %d messages, want %d", len(all), producers*perProducer)
	}
	next := map[string]int{}
	for i, m := range all {
		if i > 0 && m.Seq <= all[i-1].Seq {
			t.Fatalf("Read order: seq %d after %d", m.Seq, all[i-1].Seq)
		}
		if got, want := string(m.Payload), fmt.Sprint(next[m.Source]); got != want {
			t.Fatalf("producer %s: got message %s, want %s", m.Source, got, want)
		}
		next[m.Source]++
	}
}

func TestSeqMonotonicAcrossReopen(t *testing.T) {
	s, path := openTest(t, testOptions())
	var last uint64
	for round := range 3 {
		for range 5 {
			m := Message{Payload: []byte("x")}
			if err := s.Append(context.Background(), &m); err != nil {
				t.Fatal(err)
			}
			if m.Seq <= last {
				t.Fatalf("round %d: got seq %d, want > %d", round, m.Seq, last)
			}
			last = m.Seq
		}
		// Emptying the queue must not let seqs restart.
		if err := s.Delete(seqs(readAll(t, s))...); err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s, path, testOptions())
		if got := s.Stats().LastSeq; got != last {
			t.Errorf("round %d: got LastSeq %d after reopen, want %d", round, got, last)
		}
	}
}

func TestStatsAfterReopen(t *testing.T) {
	s, path := openTest(t, testOptions())
	payloads := []int{10, 20, 30, 40, 50}
	for _, n := range payloads {
		m := Message{Payload: make([]byte, n)}
		if err := s.Append(context.Background(), &m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(1); err != nil { // 10 bytes
		t.Fatal(err)
	}
	if err := s.DeadLetter(2, "rejected"); err != nil { // 20 bytes
		t.Fatal(err)
	}
	want := Stats{Messages: 3, Bytes: 120, DeadLetters: 1, DeadLetterBytes: 20, Appended: 5, LastSeq: 5}
	got := s.Stats()
	if got.Commits == 0 || got.Commits > 7 {
		t.Errorf("got Commits %d, want 1..7", got.Commits)
	}
	got.Commits = 0
	wantRoutes := []RouteStats{{Name: DefaultRoute, Messages: 3, Bytes: 120}}
	if !slices.Equal(got.Routes, wantRoutes) {
		t.Errorf("before reopen got routes %+v, want %+v", got.Routes, wantRoutes)
	}
	got.Routes = nil
	if l := got.AckLatency; l.Count != 5 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
		t.Errorf("AckLatency %+v, want 5 appends measured, 0 < p50 <= p99 <= max", l)
	}
	got.AckLatency = Latency{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("before reopen got %+v, want %+v", got, want)
	}
	s = reopen(t, s, path, testOptions())
	want.Appended = 0
	got = s.Stats()
	if !slices.Equal(got.Routes, wantRoutes) {
		t.Errorf("after reopen got routes %+v, want %+v", got.Routes, wantRoutes)
	}
	got.Routes = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen got %+v, want %+v", got, want)
	}
	mustCheck(t, s)
}

func TestDeadLetter(t *testing.T) {
	s, path := openTest(t, testOptions())
	for i := range 3 {
		m := Message{Address: "addr", Source: "src", Payload: []byte{byte(i)}}
		if err := s.Append(context.Background(), &m); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		seq     uint64
		reason  string
		wantErr error
	}{
		{"queued", 2, "amqp:not-allowed: address is read-only", nil},
		{"empty reason", 3, "", nil},
		{"already dead", 2, "again", ErrNotFound},
		{"never existed", 42, "x", ErrNotFound},
	}
	before := time.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.DeadLetter(tt.seq, tt.reason); !errors.Is(err, tt.wantErr) {
				t.Errorf("DeadLetter(%d) got error %v, want %v", tt.seq, err, tt.wantErr)
			}
		})
	}
	s = reopen(t, s, path, testOptions())
	if got := seqs(readAll(t, s)); !slices.Equal(got, []uint64{1}) {
		t.Errorf("got queued seqs %v, want [1]", got)
	}
	dls, err := s.DeadLetters()
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 {
		t.Fatalf("got %d dead letters, want 2", len(dls))
	}
	for i, want := range []struct {
		seq    uint64
		reason string
	}{{2, tests[0].reason}, {3, ""}} {
		dl := dls[i]
		if dl.Seq != want.seq || dl.Reason != want.reason || dl.Address != "addr" || dl.Source != "src" ||
			!bytes.Equal(dl.Payload, []byte{byte(want.seq - 1)}) {
			t.Errorf("dead letter %d: got %+v, want seq %d reason %q", i, dl, want.seq, want.reason)
		}
		if dl.At.Before(before.Add(-time.Second)) || dl.At.After(time.Now()) {
			t.Errorf("dead letter %d: got At %v, want about %v", i, dl.At, before)
		}
	}
	if err := s.DeleteDeadLetters(2, 7); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DeadLetters != 1 || st.DeadLetterBytes != 1 {
		t.Errorf("after DeleteDeadLetters got %+v, want 1 dead letter of 1 byte", st)
	}
}

func TestNotify(t *testing.T) {
	s, _ := openTest(t, testOptions())
	select {
	case <-s.Notify():
		t.Fatal("got a notification before any append")
	default:
	}
	m := Message{Payload: []byte("x")}
	if err := s.Append(context.Background(), &m); err != nil {
		t.Fatal(err)
	}
	// The notification is sent before done runs, so it is already there.
	select {
	case <-s.Notify():
	default:
		t.Fatal("got no notification after Append")
	}
	if err := s.Delete(m.Seq); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Notify():
		t.Fatal("got a notification after a commit without appends")
	default:
	}
	// A consumer that waits is woken by a concurrent append.
	woke := make(chan struct{})
	go func() {
		<-s.Notify()
		close(woke)
	}()
	if err := s.Append(context.Background(), &Message{Payload: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	<-woke
}

func TestClose(t *testing.T) {
	s, path := openTest(t, testOptions())
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkFor(t, 5*time.Second, func() bool { n, _ := committerGoroutines(); return n == 0 },
		"committer goroutine to exit")

	var calls atomic.Int32
	var asyncErr error
	s.AppendAsync(&Message{Payload: []byte("x")}, func(err error) { calls.Add(1); asyncErr = err })
	if calls.Load() != 1 || !errors.Is(asyncErr, ErrClosed) {
		t.Errorf("AppendAsync after Close: got %d calls, err %v; want 1 call with ErrClosed", calls.Load(), asyncErr)
	}
	ops := []struct {
		name string
		op   func() error
	}{
		{"Append", func() error { return s.Append(context.Background(), &Message{}) }},
		{"Delete", func() error { return s.Delete(1) }},
		{"DeadLetter", func() error { return s.DeadLetter(1, "r") }},
		{"DeleteDeadLetters", func() error { return s.DeleteDeadLetters(1) }},
		{"Check", s.Check},
		{"Read", func() error { _, err := s.Read(0, 1); return err }},
		{"DeadLetters", func() error { _, err := s.DeadLetters(); return err }},
	}
	for _, op := range ops {
		if err := op.op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", op.name, err)
		}
	}
	// The file is unlocked: it opens again at once.
	s2, err := Open(path, Options{NoSync: true, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

// TestCloseCommitsQueued checks that Close commits what was queued before it.
func TestCloseCommitsQueued(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true, MaxDelay: 50 * time.Millisecond, MaxBatch: 16})
	const n = 200
	var ok, failed atomic.Int32
	for i := range n {
		s.AppendAsync(&Message{Payload: []byte{byte(i)}}, func(err error) {
			if err != nil {
				failed.Add(1)
				return
			}
			ok.Add(1)
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ok.Load() != n || failed.Load() != 0 {
		t.Fatalf("got %d stored, %d failed, want %d stored", ok.Load(), failed.Load(), n)
	}
	s2, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := len(readAll(t, s2)); got != n {
		t.Fatalf("got %d messages after reopen, want %d", got, n)
	}
}

func TestAppendAsyncDoneOnce(t *testing.T) {
	s, _ := openTest(t, testOptions())
	const n = 2000
	calls := make([]atomic.Int32, n)
	msgs := make([]Message, n)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range msgs {
		msgs[i] = Message{Payload: []byte{byte(i)}}
		s.AppendAsync(&msgs[i], func(err error) {
			if err != nil {
				t.Errorf("message %d: %v", i, err)
			}
			if msgs[i].Seq == 0 {
				t.Errorf("message %d: Seq not set before done", i)
			}
			if calls[i].Add(1) == 1 {
				wg.Done()
			}
		})
	}
	wg.Wait()
	// Let any duplicate call happen before counting: Check runs on the
	// committer after all earlier requests completed.
	mustCheck(t, s)
	for i := range calls {
		if got := calls[i].Load(); got != 1 {
			t.Errorf("message %d: done called %d times, want 1", i, got)
		}
	}
	for i := 1; i < n; i++ {
		if msgs[i].Seq <= msgs[i-1].Seq {
			t.Fatalf("message %d got seq %d after %d", i, msgs[i].Seq, msgs[i-1].Seq)
		}
	}
}

func TestAppendContext(t *testing.T) {
	s, _ := openTest(t, testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := Message{Payload: []byte("x")}
	if err := s.Append(ctx, &m); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if m.Seq != 0 {
		t.Errorf("got Seq %d after a cancelled Append, want 0", m.Seq)
	}
	if got := readAll(t, s); len(got) != 0 {
		t.Errorf("got %d messages, want 0", len(got))
	}
}

// TestGroupCommit checks with real fsyncs that concurrent producers share
// commits.
func TestGroupCommit(t *testing.T) {
	const producers, perProducer = 64, 20
	s, _ := openTest(t, Options{})
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range perProducer {
				if err := s.Append(context.Background(), &Message{Payload: make([]byte, 256)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Appended != producers*perProducer {
		t.Fatalf("got Appended %d, want %d", st.Appended, producers*perProducer)
	}
	// Without grouping there would be one commit per message.
	if st.Commits >= st.Appended/4 {
		t.Errorf("got %d commits for %d messages, want fewer than a quarter", st.Commits, st.Appended)
	}
	t.Logf("%d messages in %d commits (%.1f per commit)", st.Appended, st.Commits, float64(st.Appended)/float64(st.Commits))
}

func TestMaxBatch(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		messages   int
		minCommits uint64
	}{
		{"batches of 8", Options{NoSync: true, MaxBatch: 8, MaxDelay: time.Second}, 64, 8},
		{"one batch by delay", Options{NoSync: true, MaxBatch: 1000, MaxDelay: 200 * time.Millisecond}, 64, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t, tt.opts)
			var wg sync.WaitGroup
			wg.Add(tt.messages)
			for range tt.messages {
				s.AppendAsync(&Message{Payload: []byte("x")}, func(error) { wg.Done() })
			}
			wg.Wait()
			st := s.Stats()
			if st.Commits < tt.minCommits || st.Commits > uint64(tt.messages) {
				t.Errorf("got %d commits for %d messages, want at least %d", st.Commits, tt.messages, tt.minCommits)
			}
		})
	}
}

// TestCommitFailure fills the file up to MaxFileSize and checks that the
// failing batch is reported as failed and invisible, and that the store works
// again once deletes freed space.
func TestCommitFailure(t *testing.T) {
	s, path := openTest(t, Options{NoSync: true, MaxFileSize: 1 << 20})
	payload := make([]byte, 32<<10)
	var stored []uint64
	var fullErr error
	for range 100 {
		m := Message{Payload: payload}
		if err := s.Append(context.Background(), &m); err != nil {
			fullErr = err
			break
		}
		stored = append(stored, m.Seq)
	}
	if !errors.Is(fullErr, ErrFull) {
		t.Fatalf("got %v after %d appends, want ErrFull", fullErr, len(stored))
	}
	before := s.Stats()
	if before.CommitErrors == 0 {
		t.Errorf("got CommitErrors 0 after a failed commit")
	}
	if !s.Full() {
		t.Errorf("Full() = false after a commit failed with ErrFull")
	}

	// A batch that fails fails for every request in it.
	const n = 10
	var wg sync.WaitGroup
	wg.Add(n)
	var failed atomic.Int32
	for range n {
		s.AppendAsync(&Message{Payload: payload}, func(err error) {
			if errors.Is(err, ErrFull) {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed.Load() != n {
		t.Errorf("got %d of %d appends failing with ErrFull, want all", failed.Load(), n)
	}
	if got := seqs(readAll(t, s)); !slices.Equal(got, stored) {
		t.Fatalf("got seqs %v after failed commits, want only the acknowledged %v", got, stored)
	}
	if got := s.Stats(); got.Messages != uint64(len(stored)) || got.Bytes != uint64(len(stored)*len(payload)) {
		t.Errorf("got %+v, want counters unchanged by failed commits", got)
	}
	mustCheck(t, s)

	// Space comes back: the store works again, and seqs were not reused.
	if err := s.Delete(stored[:len(stored)/2]...); err != nil {
		t.Fatalf("Delete while full: %v", err)
	}
	if s.Full() {
		t.Errorf("Full() = true after a successful commit freed space")
	}
	m := Message{Payload: payload}
	if err := s.Append(context.Background(), &m); err != nil {
		t.Fatalf("Append after freeing space: %v", err)
	}
	if m.Seq <= stored[len(stored)-1]+n {
		t.Errorf("got seq %d, want above the %d seqs handed out to failed appends", m.Seq, stored[len(stored)-1]+n)
	}
	s = reopen(t, s, path, testOptions())
	want := append(slices.Clone(stored[len(stored)/2:]), m.Seq)
	if got := seqs(readAll(t, s)); !slices.Equal(got, want) {
		t.Errorf("after reopen got seqs %v, want %v", got, want)
	}
}

func TestOpen(t *testing.T) {
	t.Run("creates directory and file 0600", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "store.db")
		s, err := Open(path, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("got mode %v, want 0600", got)
		}
		if got := s.Path(); got != path {
			t.Errorf("got Path %q, want %q", got, path)
		}
	})
	t.Run("locked by another opener", func(t *testing.T) {
		s, path := openTest(t, testOptions())
		_ = s
		start := time.Now()
		_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("got %v, want ErrLocked", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Open took %v to fail, want about the lock timeout", d)
		}
	})
	t.Run("not a store", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "junk.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("junk"), 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, testOptions()); err == nil {
			t.Fatal("got no error opening a file that is not a bbolt database")
		}
	})
}

func TestRecordSizeLimit(t *testing.T) {
	// A message whose record cannot be a bbolt value is refused before it is
	// queued; allocating one in a test is too costly, so check the bound.
	if got := recordSize("", "", math.MaxInt); got <= 1<<31-2 {
		t.Fatalf("got recordSize %d for a payload of MaxInt bytes, want above bbolt's value limit", got)
	}
	if got := recordSize("addr", "src", 256); got > 1024 {
		t.Fatalf("got recordSize %d for a 256-byte payload, want a small bound", got)
	}
}

func TestOptionsDefaults(t *testing.T) {
	is32 := math.MaxInt == math.MaxInt32
	default32 := 0
	if is32 {
		default32 = Default32BitMaxFileSize
	}
	tests := []struct {
		name string
		in   Options
		want Options
	}{
		{"zero", Options{}, Options{MaxBatch: DefaultMaxBatch, LockTimeout: DefaultLockTimeout, MaxFileSize: default32}},
		{"explicit", Options{MaxBatch: 7, MaxDelay: time.Millisecond, LockTimeout: time.Minute, MaxFileSize: 5 << 20},
			Options{MaxBatch: 7, MaxDelay: time.Millisecond, LockTimeout: time.Minute, MaxFileSize: 5 << 20}},
		{"negative", Options{MaxBatch: -1, MaxDelay: -time.Second, LockTimeout: -1, MaxFileSize: -1},
			Options{MaxBatch: DefaultMaxBatch, LockTimeout: DefaultLockTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			if got.Logger == nil {
				t.Error("got nil Logger")
			}
			if got.Clock == nil {
				t.Error("got nil Clock")
			}
			got.Logger, got.Clock = nil, nil
			tt.want.CompactMinSize = DefaultCompactMinSize
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Rewrite replaces a queued message's payload in place and keeps the counters.
func TestRewrite(t *testing.T) {
	s, path := openTest(t, testOptions())
	received := time.Unix(1_800_000_000, 0)
	for _, p := range []string{"one", "two"} {
		if err := s.Append(context.Background(), &Message{Address: "a", Source: "d", Received: received, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Rewrite(1, []byte("one, modified")); err != nil {
		t.Fatal(err)
	}
	if err := s.Rewrite(7, []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rewrite of a missing seq: got %v, want ErrNotFound", err)
	}
	s = reopen(t, s, path, testOptions())
	got := readAll(t, s)
	if len(got) != 2 || string(got[0].Payload) != "one, modified" || got[0].Seq != 1 || got[0].Address != "a" ||
		got[0].Source != "d" || !got[0].Received.Equal(received) || string(got[1].Payload) != "two" {
		t.Fatalf("after rewrite got %+v", got)
	}
	if st := s.Stats(); st.Bytes != uint64(len("one, modified")+len("two")) {
		t.Fatalf("Bytes %d after rewrite, want %d", st.Bytes, len("one, modified")+len("two"))
	}
	mustCheck(t, s)
}

func TestAckLatency(t *testing.T) {
	var a ackLatency
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 100 {
		a.observe(time.Duration(i+1)*time.Millisecond, t0) // 1..100 ms
	}
	got := a.snapshot(t0)
	// Buckets are powers of two of microseconds: 50 ms falls below 2^16 µs = 65.5 ms.
	if got.Count != 100 || got.P50 != 65536*time.Microsecond || got.P99 != 100*time.Millisecond || got.Max != 100*time.Millisecond {
		t.Fatalf("got %+v, want 100 measured, p50 65.536ms, p99 and max 100ms", got)
	}
	a.observe(time.Millisecond, t0.Add(latencyWindow)) // a new window; the old one still counts
	if got := a.snapshot(t0.Add(latencyWindow)); got.Count != 101 {
		t.Fatalf("after one window got %+v, want 101 measured", got)
	}
	if got := a.snapshot(t0.Add(2 * latencyWindow)); got.Count != 1 || got.Max != time.Millisecond {
		t.Fatalf("after two windows got %+v, want the 1 of the last window", got)
	}
	if got := a.snapshot(t0.Add(10 * latencyWindow)); got != (Latency{}) {
		t.Fatalf("after a quiet while got %+v, want nothing", got)
	}
}
