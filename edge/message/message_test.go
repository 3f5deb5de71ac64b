package message

import (
	"testing"
	"time"
)

func TestMadeParses(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 5e6, time.UTC)
	for _, tc := range []struct {
		name string
		m    Made
	}{
		{"all fields", Made{Durable: true, Source: "input:a", MessageID: "id", Subject: "s", ContentType: "application/json", CreationTime: at, Body: []byte("{}")}},
		{"body only", Made{Body: []byte("x")}},
		{"long body", Made{Source: "s", Body: make([]byte, 300)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Parse(tc.m.Encode())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if info.Durable != tc.m.Durable || info.HasMessageID != (tc.m.MessageID != "") || !info.CreationTime.Equal(tc.m.CreationTime.Truncate(time.Millisecond)) {
				t.Errorf("got %+v for %+v", info, tc.m)
			}
		})
	}
}

func TestExpiresAt(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		info Info
		want time.Time
	}{
		{"neither", Info{}, time.Time{}},
		{"ttl", Info{TTL: time.Minute}, t0.Add(time.Minute)},
		{"absolute", Info{AbsoluteExpiryTime: t0.Add(2 * time.Minute)}, t0.Add(2 * time.Minute)},
		{"ttl earlier", Info{TTL: time.Minute, AbsoluteExpiryTime: t0.Add(time.Hour)}, t0.Add(time.Minute)},
		{"absolute earlier", Info{TTL: time.Hour, AbsoluteExpiryTime: t0.Add(time.Minute)}, t0.Add(time.Minute)},
	} {
		if got := tc.info.ExpiresAt(t0); !got.Equal(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := ExpiresAt([]byte("not amqp"), t0); !got.IsZero() {
		t.Errorf("unparsable payload: got %v, want the zero time", got)
	}
}

func TestMatchAddress(t *testing.T) {
	for _, tc := range []struct {
		pattern, address string
		want             bool
	}{
		{"a", "a", true},
		{"a", "ab", false},
		{"alarms/*", "alarms/fire", true},
		{"alarms/*", "alarms/", true},
		{"alarms/*", "alarm", false},
		{"*", "anything", true},
	} {
		if got := MatchAddress(tc.pattern, tc.address); got != tc.want {
			t.Errorf("MatchAddress(%q, %q): got %v, want %v", tc.pattern, tc.address, got, tc.want)
		}
	}
}
