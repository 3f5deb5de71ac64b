package store

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/shadowgw/shadowgw/edge/message"
)

// fakeClock is a Clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// amqpMessage encodes an AMQP message with an optional header ttl and
// properties absolute-expiry-time, and a data body.
func amqpMessage(ttl time.Duration, abs time.Time) []byte {
	var b []byte
	if ttl > 0 {
		// header: list8 of 3 fields, durable and priority null, ttl uint.
		b = append(b, 0x00, 0x53, 0x70, 0xc0, 8, 3, 0x40, 0x40, 0x70)
		b = binary.BigEndian.AppendUint32(b, uint32(ttl.Milliseconds()))
	}
	if !abs.IsZero() {
		// properties: list8 of 9 fields, 8 nulls then a timestamp.
		b = append(b, 0x00, 0x53, 0x73, 0xc0, 18, 9, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x83)
		b = binary.BigEndian.AppendUint64(b, uint64(abs.UnixMilli()))
	}
	return append(b, 0x00, 0x53, 0x75, 0xa0, 2, 'h', 'i')
}

func TestExpiry(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0}
	s, path := openTest(t, Options{NoSync: true, DefaultTTL: time.Hour, Clock: clock})
	msgs := []struct {
		name    string
		payload []byte
		expires time.Time
	}{
		{"ttl 1m", amqpMessage(time.Minute, time.Time{}), t0.Add(time.Minute)},
		{"absolute 2m", amqpMessage(0, t0.Add(2*time.Minute)), t0.Add(2 * time.Minute)},
		{"both, ttl earlier", amqpMessage(time.Minute, t0.Add(30*time.Minute)), t0.Add(time.Minute)},
		{"neither: default ttl", amqpMessage(0, time.Time{}), t0.Add(time.Hour)},
		{"not AMQP: default ttl", []byte("raw"), t0.Add(time.Hour)},
	}
	for _, m := range msgs {
		if err := s.Append(context.Background(), &Message{Address: m.name, Received: t0, Payload: m.payload, Expires: message.ExpiresAt(m.payload, t0)}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListMessages(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if !list[i].Expires.Equal(m.expires) {
			t.Errorf("%s: got expiry %v, want %v", m.name, list[i].Expires, m.expires)
		}
	}

	clock.add(90 * time.Second) // past the 1-minute ttls
	if got := seqs(readAll(t, s)); !slicesEqual(got, []uint64{2, 4, 5}) {
		t.Errorf("Read after 90s: got seqs %v, want [2 4 5]", got)
	}
	// The next commit deletes what expired.
	if err := s.Delete(99); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Expired != 2 || st.Messages != 3 {
		t.Errorf("got Expired %d, Messages %d; want 2, 3", st.Expired, st.Messages)
	}
	// An idle store deletes them too, from its housekeeping.
	clock.add(2 * time.Hour)
	checkFor(t, 5*time.Second, func() bool { return s.Stats().Messages == 0 }, "expired messages deleted while idle")
	if st := s.Stats(); st.Expired != 5 || st.ExpiredTotal != 5 {
		t.Errorf("got Expired %d, ExpiredTotal %d, want 5, 5", st.Expired, st.ExpiredTotal)
	}
	mustCheck(t, s)
	s = reopen(t, s, path, Options{NoSync: true, Clock: clock})
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketExpiry).Stats().KeyN; n != 0 {
			t.Errorf("got %d expiry index entries left, want 0", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReadVersion1 opens a file written with layout and record version 1.
func TestReadVersion1(t *testing.T) {
	s, path := openTest(t, testOptions())
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keySchema, []byte{schemaV1}); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketExpiry); err != nil {
			return err
		}
		q := tx.Bucket(bucketQueue)
		if err := q.SetSequence(1); err != nil {
			return err
		}
		if err := q.Bucket([]byte(DefaultRoute)).Put(seqKey(1), appendMessageRecord(nil, 5, "old", "dev", []byte("v1"))); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyStats, counters{messages: 1, bytes: 2}.encode())
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path, testOptions())
	got := readAll(t, s)
	if len(got) != 1 || string(got[0].Payload) != "v1" || got[0].Address != "old" {
		t.Fatalf("got %v, want the version 1 message", got)
	}
	if err := s.Append(context.Background(), &Message{Payload: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(1, 2); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
}

// A producer that parsed the message already hands its expiry over; the store takes it
// rather than parsing the payload (it never does).
func TestExpiryFromProducerInfo(t *testing.T) {
	s, _ := openTest(t, testOptions())
	payload := []byte{0x00, 0x53, 0x75, 0xa0, 0x01, 'x'} // a data section, no ttl
	old := time.Now().Add(-time.Hour)
	for _, m := range []*Message{
		{Address: "a", Payload: payload, Received: old, Expires: (&message.Info{TTL: time.Second}).ExpiresAt(old)},
		{Address: "a", Payload: payload, Received: old},
	} {
		if err := s.Append(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, s)
	if len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("read %d messages (%+v), want only seq 2: seq 1 expired by its Info ttl", len(got), got)
	}
}
