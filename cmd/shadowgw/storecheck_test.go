package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/store"
	bolt "go.etcd.io/bbolt"
)

// TestCheckStore: `shadowgw check --store` verifies the stopped gateway's store file,
// command queues included, and names the file and the damage.
func TestCheckStore(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[store]\ndir = data\n")
	path := filepath.Join(dir, "data", storeFile)
	check := func() (string, error) {
		var out, errOut bytes.Buffer
		err := cmdCheck([]string{"--config", conf, "--store"}, &out, &errOut)
		return out.String() + errOut.String(), err
	}

	if out, err := check(); err != nil || !strings.Contains(out, "store "+path+": no file yet") {
		t.Fatalf("no file: %v\n%s", err, out)
	}

	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var seqs []uint64
	for i := range 3 {
		c := &store.Command{Device: "d1", Payload: []byte{byte('a' + i)}}
		if err := st.AppendCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, c.Seq)
	}
	if err := st.Append(ctx, &store.Message{Address: "up", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// While the gateway holds the file, check says so and changes nothing.
	if out, err := check(); err == nil || !strings.Contains(err.Error(), "store "+path+": the gateway is running") {
		t.Errorf("locked file: got %v\n%s", err, out)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := check()
	if want := "store " + path + ": OK (1 messages, 0 dead letters, 3 commands for 1 devices, 0 command dead letters)"; err != nil || !strings.Contains(out, want) {
		t.Fatalf("sound file: %v\n%s\nwant %s", err, out, want)
	}

	// A bad sector in d1's second command.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		k := []byte{byte(seqs[1] >> 56), byte(seqs[1] >> 48), byte(seqs[1] >> 40), byte(seqs[1] >> 32), byte(seqs[1] >> 24), byte(seqs[1] >> 16), byte(seqs[1] >> 8), byte(seqs[1])} // big-endian seq
		return tx.Bucket([]byte("cmd")).Bucket([]byte("d1")).Put(k, []byte{1, 0})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err = check()
	if err == nil || !strings.Contains(err.Error(), "store "+path+" failed its check") {
		t.Errorf("damaged file: err %v, want it to name the file", err)
	}
	for _, want := range []string{"store " + path + ": DAMAGED", "device d1: command " + strconv.FormatUint(seqs[1], 10) + ": command record of 2 bytes: corrupt record"} {
		if !strings.Contains(out, want) {
			t.Errorf("damaged file: output\n%s\nlacks %q", out, want)
		}
	}
}
