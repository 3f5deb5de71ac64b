package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOldestReceived(t *testing.T) {
	s, _ := openTest(t, testOptions())
	if got, err := s.OldestReceived(); err != nil || !got.IsZero() {
		t.Fatalf("empty store: OldestReceived() = %v, %v; want the zero time", got, err)
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	var ms []*Message
	for i := range 3 {
		m := &Message{Address: "a", Received: t0.Add(time.Duration(i) * time.Second), Payload: []byte("p")}
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for i, m := range ms {
		got, err := s.OldestReceived()
		if want := t0.Add(time.Duration(i) * time.Second); err != nil || !got.Equal(want) {
			t.Errorf("after %d deletes: OldestReceived() = %v, %v; want %v", i, got, err, want)
		}
		if err := s.Delete(m.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.OldestReceived(); err != nil || !got.IsZero() {
		t.Errorf("emptied store: OldestReceived() = %v, %v; want the zero time", got, err)
	}
	s.Close()
	if _, err := s.OldestReceived(); !errors.Is(err, ErrClosed) {
		t.Errorf("closed store: OldestReceived() error = %v, want ErrClosed", err)
	}
}
