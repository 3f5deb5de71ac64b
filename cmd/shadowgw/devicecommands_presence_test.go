package main

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// A presence event is stored for the cloud with Hono's fields and a short expiry.
func TestPresenceEvent(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), storeFile), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if newPresence(st, "", time.Minute, slog.New(slog.DiscardHandler)) != nil {
		t.Fatal("presence without an address")
	}
	ev := newPresence(st, "presence", 30*time.Second, slog.New(slog.DiscardHandler))
	before := time.Now()
	ev("pi-7", true)
	ev("pi-7", false)
	var msgs []store.Message
	for deadline := time.Now().Add(10 * time.Second); len(msgs) < 2; time.Sleep(10 * time.Millisecond) {
		if msgs, err = st.Read(0, 10); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored: %d events, want 2", len(msgs))
		}
	}
	infos, err := st.ListMessages(0, 10)
	if err != nil || len(infos) != 2 {
		t.Fatalf("listed %d, %v", len(infos), err)
	}
	for i, want := range []int32{-1, 0} {
		m := msgs[i]
		if m.Address != "presence" || m.Source != "pi-7" {
			t.Errorf("event %d: address %q source %q", i, m.Address, m.Source)
		}
		if d := infos[i].Expires.Sub(before); d < 30*time.Second || d > 31*time.Second {
			t.Errorf("event %d expires %v after the event, want 30s", i, d)
		}
		var am amqp.Message
		if err := am.UnmarshalBinary(m.Payload); err != nil {
			t.Fatal(err)
		}
		if am.ApplicationProperties["ttd"] != want || am.ApplicationProperties["device_id"] != "pi-7" {
			t.Errorf("event %d: application properties %v, want ttd %d device_id pi-7", i, am.ApplicationProperties, want)
		}
		if p := am.Properties; p == nil || p.ContentType == nil || *p.ContentType != PresenceContentType || p.CreationTime == nil {
			t.Errorf("event %d: properties %+v", i, am.Properties)
		}
		if am.Header == nil || !am.Header.Durable || am.Header.TTL != 30*time.Second || am.Header.Priority != 4 {
			t.Errorf("event %d: header %+v, want durable, priority 4, ttl 30s", i, am.Header)
		}
	}
}
