package store

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestCompactAfterDrain(t *testing.T) {
	opts := testOptions()
	opts.CompactMinSize = 1 << 20
	s, path := openTest(t, opts)
	const n = 8000
	for range n {
		s.AppendAsync(&Message{Address: "a", Payload: make([]byte, 1000)}, nil)
	}
	if err := s.Append(context.Background(), &Message{Payload: []byte("keep")}); err != nil {
		t.Fatal(err)
	}
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	if err := s.Delete(seqs...); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	// The committer compacts on its own once idle.
	checkFor(t, 10*time.Second, func() bool { return s.Stats().Compactions > 0 }, "an automatic compaction")
	after, _ := os.Stat(path)
	c := s.Stats().LastCompaction
	t.Logf("file %d → %d bytes, pause %v", before.Size(), after.Size(), c.Pause)
	if after.Size() > before.Size()/4 || c.After != after.Size() {
		t.Errorf("got %d bytes after compaction (reported %d), want under a quarter of %d", after.Size(), c.After, before.Size())
	}
	// The store goes on: the kept message, new appends after it.
	m := &Message{Payload: []byte("new")}
	if err := s.Append(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, s)
	if len(all) != 2 || string(all[0].Payload) != "keep" || all[1].Seq != n+2 {
		t.Errorf("got %v, want keep then seq %d", seqsOf(all), n+2)
	}
	mustCheck(t, s)
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Errorf("compaction copy left behind: %v", err)
	}
}

func seqsOf(msgs []Message) []uint64 { return seqs(msgs) }

func TestRequeueAndPurge(t *testing.T) {
	s, _ := openTest(t, testOptions())
	appendN(t, s, 5, 10)
	for _, seq := range []uint64{1, 2, 3} {
		if err := s.DeadLetter(seq, "rejected"); err != nil {
			t.Fatal(err)
		}
	}
	dl, err := s.ListDeadLetters(0, 10)
	if err != nil || len(dl) != 3 || dl[0].Reason != "rejected" {
		t.Fatalf("ListDeadLetters: got %+v, %v", dl, err)
	}
	if n, err := s.RequeueDeadLetters(2, 3, 42); err != nil || n != 2 {
		t.Fatalf("RequeueDeadLetters: got %d, %v; want 2", n, err)
	}
	if got := seqs(readAll(t, s)); !slicesEqual(got, []uint64{4, 5, 6, 7}) {
		t.Errorf("after requeue: got seqs %v, want [4 5 6 7]", got)
	}
	if n, err := s.PurgeDeadLetters(); err != nil || n != 1 {
		t.Errorf("PurgeDeadLetters: got %d, %v; want 1", n, err)
	}
	if n, err := s.Purge(); err != nil || n != 4 {
		t.Errorf("Purge: got %d, %v; want 4", n, err)
	}
	if st := s.Stats(); st.Messages != 0 || st.DeadLetters != 0 || st.Bytes != 0 {
		t.Errorf("got %+v, want an empty store", st)
	}
	mustCheck(t, s)
}
