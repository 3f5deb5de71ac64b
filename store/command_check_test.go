package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// cmdFixture is a store with commands in every state Check looks at: two devices'
// queues, a delivered command, a dead letter, supersede and the persisted totals.
type cmdFixture struct {
	s      *Store
	d1     []uint64 // queued for d1
	dead   uint64   // the dead letter (was d2's)
	seqMax uint64
}

func newCmdFixture(t *testing.T) cmdFixture {
	t.Helper()
	// Not openTest: its cleanup checks the file, which these tests damage.
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := cmdFixture{s: s}
	for _, p := range []string{"one", "two", "three"} {
		f.d1 = append(f.d1, appendCmd(t, s, "d1", "", p))
	}
	appendCmd(t, s, "d2", "cfg", "v1")
	appendCmd(t, s, "d2", "cfg", "v2") // supersedes v1
	delivered := appendCmd(t, s, "d2", "", "x")
	f.dead = appendCmd(t, s, "d2", "", "refused")
	done := make(chan error, 2)
	s.DeleteCommand("d2", delivered, func(err error) { done <- err })
	s.DeadLetterCommand("d2", f.dead, "amqp:rejected-by-device: no", func(err error) { done <- err })
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check of the undamaged file: %v", err)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		f.seqMax = tx.Bucket(bucketQueue).Sequence()
		return nil
	})
	return f
}

// damage changes the file through bbolt directly, behind the committer's back,
// as a bad sector or a bug would.
func (f cmdFixture) damage(t *testing.T, fn func(tx *bolt.Tx) error) {
	t.Helper()
	if err := f.s.db.Update(fn); err != nil {
		t.Fatalf("damaging the file: %v", err)
	}
}

func (f cmdFixture) expiryOf(t *testing.T, dev string, seq uint64) int64 {
	t.Helper()
	var e int64
	_ = f.s.db.View(func(tx *bolt.Tx) error {
		h, err := decodeCmdRecord(tx.Bucket(bucketCmd).Bucket([]byte(dev)).Get(seqKey(seq)))
		if err != nil {
			t.Fatalf("command %d of %s: %v", seq, dev, err)
		}
		e = h.expires
		return nil
	})
	return e
}

func TestCheckCommands(t *testing.T) {
	record := appendCmdRecord(nil, 1, 2, "", "command/d1", "", []byte("forged"))
	cases := []struct {
		name    string
		damage  func(t *testing.T, f cmdFixture, tx *bolt.Tx) error
		want    func(f cmdFixture) []string // each must be in the error
		corrupt bool                        // the error wraps ErrCorrupt
	}{
		{
			name: "undecodable command",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmd).Bucket([]byte("d1")).Put(seqKey(f.d1[1]), []byte{cmdRecordV1, 0, 0})
			},
			want: func(f cmdFixture) []string {
				return []string{"device d1: command " + fmt.Sprint(f.d1[1]) + ": command record of 3 bytes"}
			},
			corrupt: true,
		},
		{
			name: "command key above the counter",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				seq := f.seqMax + 10
				if err := tx.Bucket(bucketCmdExp).Put(cmdExpIndexKey(2, seq), []byte("d1")); err != nil {
					return err
				}
				return tx.Bucket(bucketCmd).Bucket([]byte("d1")).Put(seqKey(seq), record)
			},
			want: func(f cmdFixture) []string {
				return []string{"device d1: command " + fmt.Sprint(f.seqMax+10) + " above sequence counter " + fmt.Sprint(f.seqMax)}
			},
		},
		{
			name: "count differs from the records",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				seq := f.d1[2]
				if err := tx.Bucket(bucketCmdExp).Delete(cmdExpIndexKey(f.expiryOf(t, "d1", seq), seq)); err != nil {
					return err
				}
				return tx.Bucket(bucketCmd).Bucket([]byte("d1")).Delete(seqKey(seq))
			},
			want: func(f cmdFixture) []string {
				return []string{"device d1: counted 3 commands of 11 bytes, records hold 2 of 6 bytes",
					"counted 4 commands of 13 bytes in total, records hold 3 of 8 bytes"}
			},
		},
		{
			name: "command without an expiry entry",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				seq := f.d1[0]
				return tx.Bucket(bucketCmdExp).Delete(cmdExpIndexKey(f.expiryOf(t, "d1", seq), seq))
			},
			want: func(f cmdFixture) []string {
				return []string{"device d1: command " + fmt.Sprint(f.d1[0]) + " has no expiry entry"}
			},
		},
		{
			name: "expiry entry pointing at nothing",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmdExp).Put(cmdExpIndexKey(5, 999), []byte("d1"))
			},
			want: func(f cmdFixture) []string {
				return []string{"expiry entry for command 999 of device d1 points at no queued command"}
			},
		},
		{
			name: "expiry entry under another device",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				seq := f.d1[0]
				return tx.Bucket(bucketCmdExp).Put(cmdExpIndexKey(f.expiryOf(t, "d1", seq), seq), []byte("d2"))
			},
			want: func(f cmdFixture) []string {
				return []string{"device d1: command " + fmt.Sprint(f.d1[0]) + " has no expiry entry",
					"expiry entry for command " + fmt.Sprint(f.d1[0]) + " of device d2 points at no queued command"}
			},
		},
		{
			name: "second expiry entry with another time",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmdExp).Put(cmdExpIndexKey(7, f.d1[1]), []byte("d1"))
			},
			want: func(f cmdFixture) []string {
				return []string{"expiry entry for command " + fmt.Sprint(f.d1[1]) + " of device d1 says 7, the command "}
			},
		},
		{
			name: "malformed expiry key",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmdExp).Put([]byte("short"), []byte("d1"))
			},
			want:    func(f cmdFixture) []string { return []string{"expiry entry 73686f7274: length 5, want 16"} },
			corrupt: true,
		},
		{
			name: "undecodable dead letter",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmdDead).Put(seqKey(f.dead), []byte{1, 2, 3})
			},
			want: func(f cmdFixture) []string {
				return []string{"dead letter " + fmt.Sprint(f.dead) + ": command dead letter", "counted 1 dead letters, records hold 0"}
			},
			corrupt: true,
		},
		{
			name: "dead letter missing",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmdDead).Delete(seqKey(f.dead))
			},
			want: func(f cmdFixture) []string { return []string{"counted 1 dead letters, records hold 0"} },
		},
		{
			name: "unreadable totals",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyCmdTotals, []byte{0, 0, 1})
			},
			want:    func(f cmdFixture) []string { return []string{"totals record of 3 bytes, want 40"} },
			corrupt: true,
		},
		{
			name: "totals not the committer's",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyCmdTotals, cmdTotals{delivered: 42}.encode())
			},
			want: func(f cmdFixture) []string {
				return []string{"totals record {delivered:42 expired:0 dead:0 superseded:0 refused:0}, committer holds {delivered:1 expired:0 dead:1 superseded:1 refused:0}"}
			},
		},
		{
			name: "device queue that is not a bucket",
			damage: func(t *testing.T, f cmdFixture, tx *bolt.Tx) error {
				return tx.Bucket(bucketCmd).Put([]byte("d9"), []byte("x"))
			},
			want: func(f cmdFixture) []string { return []string{`key "d9" in cmd is a value, not a device queue`} },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newCmdFixture(t)
			f.damage(t, func(tx *bolt.Tx) error { return tc.damage(t, f, tx) })
			err := f.s.Check()
			if err == nil {
				t.Fatal("Check: got nil, want an error")
			}
			for _, w := range tc.want(f) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check: got %q\nwant it to contain %q", err, w)
				}
			}
			t.Log(err)
			if tc.corrupt != errors.Is(err, ErrCorrupt) {
				t.Errorf("Check: errors.Is(err, ErrCorrupt) = %v, want %v", !tc.corrupt, tc.corrupt)
			}
		})
	}
}
