package store

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMessageRecord(t *testing.T) {
	tests := []struct {
		name     string
		received int64
		address  string
		source   string
		payload  []byte
	}{
		{"typical", time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(), "telemetry/temp", "pi-17", []byte{0x00, 0x53, 0x77, 0xa1, 0x01, 'x'}},
		{"empty", 0, "", "", nil},
		{"negative time", math.MinInt64, "a", "b", []byte("c")},
		{"max time", math.MaxInt64, "a", "b", []byte("c")},
		{"long strings", 1, strings.Repeat("a", 200), strings.Repeat("s", 70000), []byte("p")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := appendMessageRecord([]byte("prefix"), tt.received, tt.address, tt.source, tt.payload)[len("prefix"):]
			if v[0] != messageRecordV1 {
				t.Fatalf("got version byte %d, want %d", v[0], messageRecordV1)
			}
			if uint64(len(v)) > recordSize(tt.address, tt.source, len(tt.payload)) {
				t.Errorf("got %d bytes, above recordSize %d", len(v), recordSize(tt.address, tt.source, len(tt.payload)))
			}
			h, err := decodeMessageRecord(7, v)
			if err != nil {
				t.Fatal(err)
			}
			if h.received != tt.received || string(h.address) != tt.address || string(h.source) != tt.source || !bytes.Equal(h.payload, tt.payload) {
				t.Errorf("got %d %q %q %q, want %d %q %q %q", h.received, h.address, h.source, h.payload,
					tt.received, tt.address, tt.source, tt.payload)
			}

			d := appendDeadRecord(nil, 99, "amqp:rejected", v)
			dh, err := decodeDeadRecord(7, d)
			if err != nil {
				t.Fatal(err)
			}
			if dh.at != 99 || string(dh.reason) != "amqp:rejected" || !bytes.Equal(dh.msg.payload, tt.payload) || string(dh.msg.address) != tt.address {
				t.Errorf("dead letter: got %d %q %q, want 99 amqp:rejected %q", dh.at, dh.reason, dh.msg.payload, tt.payload)
			}
		})
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good := appendMessageRecord(nil, 1, "addr", "src", []byte("payload"))
	tests := []struct {
		name string
		v    []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"header only part", good[:5], "shorter than"},
		{"unknown version", append([]byte{9}, good[1:]...), "unknown message record version 9"},
		{"address length truncated", good[:fixedHeader], "address length at offset 9"},
		{"address beyond end", good[:fixedHeader+3], "address at offset 10 is 4 bytes long, only 2 remain"},
		{"huge address length", append(append(bytes.Clone(good[:fixedHeader]), 0xff, 0xff, 0xff, 0xff, 0x0f), 'a'), "address at offset 14"},
		{"varint overflow", append(bytes.Clone(good[:fixedHeader]), bytes.Repeat([]byte{0xff}, 11)...), "truncated or overflows"},
		{"source missing", good[:fixedHeader+5], "source length at offset 14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeMessageRecord(42, tt.v)
			if !errors.Is(err, ErrCorrupt) || !containsAll(err.Error(), "record 42", tt.want) {
				t.Errorf("got %v, want ErrCorrupt naming record 42 and %q", err, tt.want)
			}
		})
	}
	dead := appendDeadRecord(nil, 5, "reason", good)
	deadTests := []struct {
		name string
		v    []byte
		want string
	}{
		{"short", dead[:3], "shorter than"},
		{"unknown version", append([]byte{7}, dead[1:]...), "unknown dead-letter record version 7"},
		{"reason beyond end", dead[:fixedHeader+3], "reason at offset 10"},
		{"inner record corrupt", dead[:fixedHeader+1+len("reason")+3], "message record of 3 bytes"},
	}
	for _, tt := range deadTests {
		t.Run("dead "+tt.name, func(t *testing.T) {
			_, err := decodeDeadRecord(43, tt.v)
			if !errors.Is(err, ErrCorrupt) || !containsAll(err.Error(), "record 43", tt.want) {
				t.Errorf("got %v, want ErrCorrupt naming record 43 and %q", err, tt.want)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	c := counters{messages: 1, bytes: 2, deadLetters: 3, deadBytes: 1 << 60}
	got, err := decodeCounters(c.encode())
	if err != nil || got != c {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
	for _, v := range [][]byte{nil, {2}, c.encode()[:10], append([]byte{9}, c.encode()[1:]...)} {
		if _, err := decodeCounters(v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeCounters(%x): got %v, want ErrCorrupt", v, err)
		}
	}
}

// TestCorruptRecordInFile writes a damaged record into the file and checks
// that reads and Check report it by seq instead of panicking.
func TestCorruptRecordInFile(t *testing.T) {
	path := t.TempDir() + "/store.db"
	s, err := Open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if err := s.Append(context.Background(), &Message{Address: "a", Payload: []byte("ok")}); err != nil {
			t.Fatal(err)
		}
	}
	// A second writer is fine for bbolt; the test plays the role of a bad
	// sector.
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueue).Bucket([]byte(DefaultRoute)).Put(seqKey(2), []byte{messageRecordV1, 0, 0})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(0, 10)
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Seq != 2 || !strings.Contains(err.Error(), "record 2") {
		t.Fatalf("Read: got %v, want a CorruptError for record 2", err)
	}
	if got, err := s.Read(2, 10); err != nil || len(got) != 1 || got[0].Seq != 3 {
		t.Errorf("Read past the damage: got %v, %v; want seq 3", seqs(got), err)
	}
	if err := s.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 2") {
		t.Errorf("Check: got %v, want ErrCorrupt naming record 2", err)
	}
	// The damaged message can still be deleted, after which the file is
	// consistent except for the byte count, which Check reports.
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "stats record") {
		t.Errorf("Check after deleting the damage: got %v, want a stats mismatch", err)
	}
}

// FuzzDecodeMessageRecord checks that decoding never panics and that what
// decodes re-encodes to the same bytes.
func FuzzDecodeMessageRecord(f *testing.F) {
	f.Add(appendMessageRecord(nil, time.Now().UnixNano(), "telemetry", "pi-1", []byte{0x00, 0x53, 0x77, 0xa1, 0x02, 'h', 'i'}))
	f.Add(appendMessageRecord(nil, 0, "", "", nil))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, v []byte) {
		h, err := decodeMessageRecord(1, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got error %v not wrapping ErrCorrupt", err)
			}
			return
		}
		got := appendMessageRecord(nil, h.received, string(h.address), string(h.source), h.payload)
		h2, err := decodeMessageRecord(1, got)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if h2.received != h.received || !bytes.Equal(h2.address, h.address) || !bytes.Equal(h2.source, h.source) || !bytes.Equal(h2.payload, h.payload) {
			t.Fatalf("decode→encode→decode changed the record")
		}
	})
}

// FuzzDecodeDeadRecord is FuzzDecodeMessageRecord for dead-letter records.
func FuzzDecodeDeadRecord(f *testing.F) {
	f.Add(appendDeadRecord(nil, 5, "amqp:rejected", appendMessageRecord(nil, 1, "a", "b", []byte("c"))))
	f.Add(appendDeadRecord(nil, 0, "", appendMessageRecord(nil, 0, "", "", nil)))
	f.Fuzz(func(t *testing.T, v []byte) {
		h, err := decodeDeadRecord(1, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got error %v not wrapping ErrCorrupt", err)
			}
			return
		}
		msg := appendMessageRecord(nil, h.msg.received, string(h.msg.address), string(h.msg.source), h.msg.payload)
		h2, err := decodeDeadRecord(1, appendDeadRecord(nil, h.at, string(h.reason), msg))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if h2.at != h.at || !bytes.Equal(h2.reason, h.reason) || !bytes.Equal(h2.msg.payload, h.msg.payload) {
			t.Fatalf("decode→encode→decode changed the record")
		}
	})
}
