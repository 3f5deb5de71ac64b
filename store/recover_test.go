package store

import (
	"bytes"
	"context"
	"fmt"
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

// TestRecoverCommands: the commands waiting for their devices, and their dead
// letters, are salvaged with the upward queue when a damaged file is replaced; their
// seqs stay unique. The damage hits a page of upward messages (found by their bytes;
// a page that turns out to be free is passed over for the next one).
func TestRecoverCommands(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	s, err := Open(pristine, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	up := bytes.Repeat([]byte("U"), 200)
	for range 3000 {
		s.AppendAsync(&Message{Address: "a", Source: "d", Payload: up}, nil)
	}
	for i := range 30 {
		dev := fmt.Sprint("dev", i%3)
		if err := s.AppendCommand(ctx, &Command{Device: dev, Payload: []byte(fmt.Sprint("CMD", i))}); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, &Message{Address: "up", Payload: up}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.ReadCommands("dev0", 0, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("ReadCommands: %v %v", first, err)
	}
	done := make(chan error, 1)
	s.DeadLetterCommand("dev0", first[0].Seq, "rejected by the device", func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(pristine)
	if err != nil {
		t.Fatal(err)
	}

	opts := testOptions()
	opts.Recover = true
	s = nil
	for page := 2; page*4096 < len(file) && s == nil; page++ {
		p := file[page*4096 : (page+1)*4096]
		if !bytes.Contains(p, up[:64]) || bytes.Contains(p, []byte("CMD")) {
			continue
		}
		path := filepath.Join(dir, fmt.Sprint("damaged-", page, ".db"))
		damaged := bytes.Clone(file)
		copy(damaged[page*4096+16:], bytes.Repeat([]byte("\xa5\x5a"), 256))
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path, opts)
		if err != nil {
			t.Fatalf("Open with Recover: %v", err)
		}
		if st.Stats().Recovered == nil {
			st.Close() // a free page: nothing noticed
			continue
		}
		s = st
	}
	if s == nil {
		t.Fatal("no page of upward messages made the file damaged")
	}
	defer s.Close()
	for d := range 3 {
		dev := fmt.Sprint("dev", d)
		cs, err := s.ReadCommands(dev, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		want := 10
		if d == 0 {
			want = 9 // one was dead-lettered
		}
		if len(cs) != want {
			t.Fatalf("%s: %d commands after the salvage, want %d", dev, len(cs), want)
		}
		for i, c := range cs {
			n := 3*i + d
			if d == 0 {
				n += 3
			}
			if string(c.Payload) != fmt.Sprint("CMD", n) {
				t.Fatalf("%s: command %d is %q, want CMD%d", dev, i, c.Payload, n)
			}
		}
	}
	if st := s.CommandStats(); st.Messages != 29 || st.Devices != 3 || st.DeadLetters != 1 {
		t.Errorf("command stats after the salvage: %+v, want 29 queued for 3 devices, 1 dead letter", st)
	}
	// New seqs continue after every salvaged one, commands included.
	c := &Command{Device: "dev1", Payload: []byte("new")}
	if err := s.AppendCommand(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Seq <= 3060 {
		t.Errorf("new command seq %d, want after the 3,060 salvaged seqs", c.Seq)
	}
}
