package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damagedFile writes a store of n messages of 200 bytes (and 10 dead
// letters), closes it, damages it with damage and returns its path.
func damagedFile(t *testing.T, n int, damage func(t *testing.T, path string)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		s.AppendAsync(&Message{Address: "a", Source: "d", Payload: make([]byte, 200)}, nil)
	}
	if err := s.Append(context.Background(), &Message{Payload: []byte("last")}); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 10; seq++ {
		if err := s.DeadLetter(seq, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(t, path)
	return path
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestRecover(t *testing.T) {
	const n = 3000
	garbage := []byte(strings.Repeat("\xa5\x5a", 2048))
	tests := []struct {
		name         string
		damage       func(t *testing.T, path string)
		minSalvaged  uint64
		wantLostKnow bool
		anyLost      bool // the tree's root may be in the lost part
	}{
		{"truncated to half", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, 0, false, true},
		{"both meta pages overwritten", func(t *testing.T, path string) {
			overwrite(t, path, 0, garbage[:4096])
			overwrite(t, path, 4096, garbage[:4096])
		}, 0, false, false},
		{"bytes flipped in data pages", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			for _, at := range []int64{fi.Size() / 3, fi.Size() / 2} {
				overwrite(t, path, at/4096*4096+16, garbage[:512])
			}
		}, n / 2, true, false},
		{"garbage file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, garbage[:100], 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := damagedFile(t, n, tt.damage)
			// Without Recover, bbolt may crash the process on such a file.
			var logs lockedBuffer
			opts := testOptions()
			opts.Recover = true
			opts.Logger = newTextLogger(&logs)
			s, err := Open(path, opts)
			if err != nil {
				t.Fatalf("Open with Recover: %v", err)
			}
			defer s.Close()
			rec := s.Stats().Recovered
			if rec == nil {
				t.Fatal("got no Recovered")
			}
			if _, err := os.Stat(rec.MovedTo); err != nil || !strings.HasPrefix(rec.MovedTo, path+".corrupt-") {
				t.Errorf("damaged file not kept at %q: %v", rec.MovedTo, err)
			}
			if rec.Salvaged < tt.minSalvaged || rec.Salvaged > n+1 {
				t.Errorf("got %d salvaged, want from %d to %d", rec.Salvaged, tt.minSalvaged, n+1)
			}
			if !tt.anyLost && (rec.Lost >= 0) != tt.wantLostKnow {
				t.Errorf("got Lost %d, want known: %v", rec.Lost, tt.wantLostKnow)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), rec.MovedTo) {
				t.Errorf("no error log naming the moved file:\n%s", logs.String())
			}
			st := s.Stats()
			if st.Messages+st.DeadLetters != rec.Salvaged {
				t.Errorf("got %d+%d records, want %d salvaged", st.Messages, st.DeadLetters, rec.Salvaged)
			}
			// Order survives, and new seqs continue after the salvaged ones.
			all := readAll(t, s)
			for i := 1; i < len(all); i++ {
				if all[i].Seq <= all[i-1].Seq {
					t.Fatalf("seqs out of order at %d: %d after %d", i, all[i].Seq, all[i-1].Seq)
				}
			}
			m := &Message{Payload: []byte("after")}
			if err := s.Append(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if len(all) > 0 && m.Seq <= all[len(all)-1].Seq {
				t.Errorf("new seq %d not after salvaged %d", m.Seq, all[len(all)-1].Seq)
			}
			mustCheck(t, s)
			t.Logf("salvaged %d, lost %d, cause: %.120s", rec.Salvaged, rec.Lost, rec.Cause)
			if t.Failed() {
				t.Log(logs.String())
			}
		})
	}
}

func TestRecoverLeavesGoodFileAlone(t *testing.T) {
	path := damagedFile(t, 100, func(*testing.T, string) {})
	opts := testOptions()
	opts.Recover = true
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rec := s.Stats().Recovered; rec != nil {
		t.Fatalf("intact file recovered: %+v", rec)
	}
	if got := s.Stats().Messages; got != 91 {
		t.Errorf("got %d messages, want 91", got)
	}
}
