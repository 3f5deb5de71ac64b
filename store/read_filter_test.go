package store

import (
	"slices"
	"testing"
)

// ReadNextFunc passes over what skip refuses, moving the cursor past it, and still
// serves routes by priority: a high-priority address that is skipped entirely lets
// the lower priorities through.
func TestReadNextFunc(t *testing.T) {
	s, _ := openTest(t, routedOptions(Route{}, Route{}))
	alarms := put(t, s, "alarms/a", 3)
	tel := put(t, s, "telemetry/t", 4)

	var asked []uint64
	skip := func(seq uint64, address []byte) bool {
		asked = append(asked, seq)
		return string(address) == "alarms/a" || seq == tel[1]
	}
	var c Cursor
	got, err := s.ReadNextFunc(&c, 2, skip)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{tel[0], tel[2]}; !slices.Equal(seqs(got), want) {
		t.Fatalf("first read got %v, want %v (alarms and %d skipped)", seqs(got), want, tel[1])
	}
	if want := append(slices.Clone(alarms), tel[:3]...); !slices.Equal(asked, want) {
		t.Fatalf("skip asked about %v, want %v", asked, want)
	}
	got, _ = s.ReadNextFunc(&c, 10, skip)
	if want := tel[3:]; !slices.Equal(seqs(got), want) {
		t.Fatalf("second read got %v, want %v", seqs(got), want)
	}
	if got, _ := s.ReadNextFunc(&c, 10, skip); len(got) != 0 {
		t.Fatalf("got %v at the end, want nothing", seqs(got))
	}
	// The skipped messages are still stored: a fresh cursor without a filter reads
	// them.
	var fresh Cursor
	if got, _ := s.ReadNext(&fresh, 10); !slices.Equal(seqs(got), alarms) {
		t.Fatalf("ReadNext from the start got %v, want the alarms %v", seqs(got), alarms)
	}
}

// A read stops once its messages hold ReadBytes, and returns at least one message
// however large; the next read goes on after it.
func TestReadNextBytes(t *testing.T) {
	s, _ := openTest(t, Options{})
	var want []uint64
	for _, size := range []int{ReadBytes + 1, 10, ReadBytes / 2, ReadBytes / 2, 10, 20} {
		m := Message{Address: "big", Payload: make([]byte, size)}
		if err := s.Append(t.Context(), &m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.Seq)
	}
	var c Cursor
	for i, n := range []int{1, 3, 2} { // ReadBytes+1 alone; 10 + two halves; the rest
		got, err := s.ReadNext(&c, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), want[:n]) {
			t.Fatalf("read %d: got %v, want %v", i, seqs(got), want[:n])
		}
		want = want[n:]
	}
	if got, _ := s.ReadNext(&c, 100); len(got) != 0 {
		t.Fatalf("got %v at the end, want nothing", seqs(got))
	}
}
