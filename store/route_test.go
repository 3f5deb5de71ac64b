package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// routedOptions has an alarms route (priority 10) and a telemetry route
// (priority 0, like default); the callers set budgets and policies.
func routedOptions(alarms, telemetry Route) Options {
	o := testOptions()
	alarms.Name, alarms.Priority = "alarms", 10
	alarms.Addresses = []string{"alarms/*", "panic"}
	telemetry.Name = "telemetry"
	telemetry.Addresses = []string{"telemetry/*", "telemetry/pressure/raw"}
	o.Routes = []Route{alarms, telemetry}
	return o
}

func put(t *testing.T, s *Store, address string, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for range n {
		m := Message{Address: address, Payload: []byte("0123456789")}
		if err := s.Append(context.Background(), &m); err != nil {
			t.Fatalf("append to %s: %v", address, err)
		}
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func routeStats(s *Store, name string) RouteStats {
	for _, r := range s.Stats().Routes {
		if r.Name == name {
			return r
		}
	}
	return RouteStats{}
}

func TestRouteOf(t *testing.T) {
	s, _ := openTest(t, routedOptions(Route{}, Route{Addresses: nil}))
	for _, tt := range []struct{ address, want string }{
		{"alarms/fire", "alarms"},
		{"alarms/", "alarms"},
		{"alarms", DefaultRoute}, // the pattern is "alarms/*"
		{"panic", "alarms"},
		{"panic/x", DefaultRoute},
		{"telemetry/temp", "telemetry"},
		{"telemetry/pressure/raw", "telemetry"},
		{"other", DefaultRoute},
		{"", DefaultRoute},
	} {
		if got := s.RouteOf(tt.address); got != tt.want {
			t.Errorf("RouteOf(%q) = %q, want %q", tt.address, got, tt.want)
		}
	}
}

func TestRouteLongestPrefixWins(t *testing.T) {
	o := testOptions()
	o.Routes = []Route{
		{Name: "wide", Addresses: []string{"a/*"}},
		{Name: "narrow", Addresses: []string{"a/b/*"}},
	}
	s, _ := openTest(t, o)
	for address, want := range map[string]string{"a/b/c": "narrow", "a/c": "wide", "a/b": "wide"} {
		if got := s.RouteOf(address); got != want {
			t.Errorf("RouteOf(%q) = %q, want %q", address, got, want)
		}
	}
}

func TestValidateRoutes(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   string // in the error; "" for none
	}{
		{"ok", []Route{{Name: "a", Addresses: []string{"x", "y/*"}}, {Name: DefaultRoute, Priority: -1}}, ""},
		{"empty name", []Route{{Addresses: []string{"x"}}}, "1 to 64 bytes"},
		{"bad name", []Route{{Name: "a/b", Addresses: []string{"x"}}}, "only letters"},
		{"twice", []Route{{Name: "a", Addresses: []string{"x"}}, {Name: "a", Addresses: []string{"y"}}}, "configured twice"},
		{"no addresses", []Route{{Name: "a"}}, "no addresses"},
		{"default with addresses", []Route{{Name: DefaultRoute, Addresses: []string{"x"}}}, "has no addresses"},
		{"shared pattern", []Route{{Name: "a", Addresses: []string{"x/*"}}, {Name: "b", Addresses: []string{"x/*"}}}, `already taken by route "a"`},
		{"star inside", []Route{{Name: "a", Addresses: []string{"x*y"}}}, "only allowed at the end"},
		{"star alone", []Route{{Name: "a", Addresses: []string{"*"}}}, "default route takes"},
		{"policy", []Route{{Name: "a", Addresses: []string{"x"}, WhenFull: 9}}, "FullPolicy(9)"},
		{"ttl", []Route{{Name: "a", Addresses: []string{"x"}, DefaultTTL: -time.Second}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRoutes(tt.routes)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := Open(t.TempDir()+"/s.db", Options{Routes: []Route{{Name: "a"}}}); err == nil {
		t.Fatal("Open accepted a route without addresses")
	}
}

// ReadNext serves the highest priority first, FIFO within a route, and sees
// high-priority messages appended while a low-priority backlog is read.
func TestReadNextPriority(t *testing.T) {
	s, _ := openTest(t, routedOptions(Route{}, Route{}))
	tel := put(t, s, "telemetry/t", 5)
	other := put(t, s, "other", 3) // default: priority 0, like telemetry
	alarms := put(t, s, "alarms/a", 4)

	var c Cursor
	got, err := s.ReadNext(&c, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := alarms[:3]; !slices.Equal(seqs(got), want) {
		t.Fatalf("first read got %v, want alarms %v", seqs(got), want)
	}
	for _, m := range got {
		if m.Route != "alarms" {
			t.Fatalf("got Route %q, want alarms", m.Route)
		}
	}
	got, _ = s.ReadNext(&c, 3)
	if want := alarms[3:]; !slices.Equal(seqs(got), want) {
		t.Fatalf("second read got %v, want the last alarm %v", seqs(got), want)
	}
	// Equal priorities are merged in seq order.
	got, _ = s.ReadNext(&c, 6)
	if want := append(slices.Clone(tel), other[0]); !slices.Equal(seqs(got), want) {
		t.Fatalf("third read got %v, want %v", seqs(got), want)
	}
	// An alarm appended now comes before the rest of the backlog.
	late := put(t, s, "panic", 1)
	got, _ = s.ReadNext(&c, 10)
	if !slices.Equal(seqs(got), late) {
		t.Fatalf("got %v after a new alarm, want %v", seqs(got), late)
	}
	got, _ = s.ReadNext(&c, 10)
	if want := other[1:]; !slices.Equal(seqs(got), want) {
		t.Fatalf("last read got %v, want %v", seqs(got), want)
	}
	if got, _ := s.ReadNext(&c, 10); len(got) != 0 {
		t.Fatalf("got %v at the end, want nothing", seqs(got))
	}
	// Read still returns everything in seq order.
	if all := readAll(t, s); len(all) != 13 || !slices.IsSorted(seqs(all)) {
		t.Fatalf("Read got %v, want 13 messages in seq order", seqs(all))
	}
}

// A route's own budget with backpressure refuses only that route's messages.
func TestRouteBudgetBackpressure(t *testing.T) {
	s, _ := openTest(t, routedOptions(Route{}, Route{MaxMessages: 3}))
	tel := put(t, s, "telemetry/t", 3)
	err := s.Append(context.Background(), &Message{Address: "telemetry/t", Payload: []byte("x")})
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "route max-messages") {
		t.Fatalf("4th telemetry append: got %v, want ErrFull (route max-messages)", err)
	}
	checkFor(t, time.Second, func() bool { return s.FullFor("telemetry/t") }, "FullFor(telemetry) not true")
	if s.FullFor("alarms/a") || s.FullFor("other") || s.Full() {
		t.Fatalf("FullFor(alarms) %v, FullFor(other) %v, Full %v: want false", s.FullFor("alarms/a"), s.FullFor("other"), s.Full())
	}
	if got := routeStats(s, "telemetry").FullReason; got != "route max-messages" {
		t.Fatalf("telemetry FullReason %q, want route max-messages", got)
	}
	put(t, s, "alarms/a", 10)
	put(t, s, "other", 10)
	if err := s.Delete(tel[0]); err != nil {
		t.Fatal(err)
	}
	if s.FullFor("telemetry/t") {
		t.Fatal("FullFor(telemetry) still true after a delete made room")
	}
	put(t, s, "telemetry/t", 1)
	mustCheck(t, s)
}

// A route's own budget with drop-oldest drops that route's oldest messages only.
func TestRouteBudgetDropOldest(t *testing.T) {
	s, _ := openTest(t, routedOptions(Route{}, Route{MaxMessages: 3, WhenFull: DropOldest}))
	alarms := put(t, s, "alarms/a", 2)
	tel := put(t, s, "telemetry/t", 5)
	if s.FullFor("telemetry/t") {
		t.Fatal("a drop-oldest route reports full")
	}
	st := routeStats(s, "telemetry")
	if st.Messages != 3 || st.Dropped != 2 {
		t.Fatalf("telemetry %+v, want 3 messages, 2 dropped", st)
	}
	if got, want := seqs(readAll(t, s)), append(slices.Clone(alarms), tel[2:]...); !slices.Equal(got, want) {
		t.Fatalf("queue %v, want %v", got, want)
	}
	if got := s.Stats().DroppedOldest; got != 2 {
		t.Fatalf("DroppedOldest %d, want 2", got)
	}
}

// When the store as a whole is full, a higher-priority route takes room from
// a lower-priority drop-oldest route; never the other way round.
func TestStoreBudgetEvictsLowerPriority(t *testing.T) {
	o := routedOptions(Route{}, Route{WhenFull: DropOldest})
	o.MaxMessages = 5
	s, _ := openTest(t, o)
	tel := put(t, s, "telemetry/t", 5)
	if s.FullFor("alarms/a") || s.FullFor("telemetry/t") {
		t.Fatal("full although telemetry can drop")
	}
	if !s.FullFor("other") {
		// default is backpressure at priority 0, equal to telemetry: it may not evict it.
		t.Fatal("the default route (priority 0) may not take room from telemetry (priority 0)")
	}
	if err := s.Append(context.Background(), &Message{Address: "other", Payload: []byte("x")}); !errors.Is(err, ErrFull) {
		t.Fatalf("append to default: got %v, want ErrFull", err)
	}
	alarms := put(t, s, "alarms/a", 3)
	if got, want := seqs(readAll(t, s)), append(slices.Clone(tel[3:]), alarms...); !slices.Equal(got, want) {
		t.Fatalf("queue %v, want telemetry %v then alarms %v", got, tel[3:], alarms)
	}
	put(t, s, "alarms/a", 2) // takes the last telemetry
	if st := routeStats(s, "telemetry"); st.Messages != 0 || st.Dropped != 5 {
		t.Fatalf("telemetry %+v, want 0 messages, 5 dropped", st)
	}
	checkFor(t, time.Second, func() bool { return s.FullFor("alarms/a") }, "alarms not full once nothing can be dropped")
	if got := routeStats(s, "alarms").FullReason; got != "max-messages" {
		t.Fatalf("alarms FullReason %q, want max-messages", got)
	}
	if err := s.Append(context.Background(), &Message{Address: "alarms/a", Payload: []byte("x")}); !errors.Is(err, ErrFull) {
		t.Fatalf("append to alarms: got %v, want ErrFull", err)
	}
	// Telemetry is drop-oldest but may not evict alarms (higher priority).
	if err := s.Append(context.Background(), &Message{Address: "telemetry/t", Payload: []byte("x")}); !errors.Is(err, ErrFull) {
		t.Fatalf("append to telemetry: got %v, want ErrFull", err)
	}
	if !s.Full() || s.Stats().FullReason == "" {
		t.Fatalf("Full %v, FullReason %q: want full with a reason", s.Full(), s.Stats().FullReason)
	}
	if got := routeStats(s, "alarms").Messages; got != 5 {
		t.Fatalf("alarms hold %d, want 5: none may be lost", got)
	}
}

// Each route may have its own default TTL.
func TestRouteDefaultTTL(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	o := routedOptions(Route{}, Route{DefaultTTL: time.Minute})
	o.DefaultTTL = time.Hour // the default route's
	o.Clock = clock
	s, _ := openTest(t, o)
	for _, a := range []string{"telemetry/t", "alarms/a", "other"} {
		if err := s.Append(context.Background(), &Message{Address: a, Received: clock.Now(), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	clock.add(2 * time.Minute)
	if got := seqs(readAll(t, s)); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("after 2 minutes got %v, want [2 3] (telemetry expired)", got)
	}
	clock.add(time.Hour)
	if got := seqs(readAll(t, s)); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("after an hour got %v, want [2] (alarms never expire)", got)
	}
	checkFor(t, 3*time.Second, func() bool { return s.Stats().Expired == 2 }, "expired messages not purged: %+v", s.Stats())
	mustCheck(t, s)
}

// Counters, deletes, dead letters and requeues work across routes and
// survive a reopen; a route removed from the configuration keeps its messages
// and they are still read; an empty one disappears.
func TestRoutesReopen(t *testing.T) {
	o := routedOptions(Route{}, Route{})
	s, path := openTest(t, o)
	tel := put(t, s, "telemetry/t", 4)
	alarms := put(t, s, "alarms/a", 2)
	put(t, s, "other", 1)
	if err := s.Delete(tel[0], alarms[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(tel[1], "rejected"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RequeueDeadLetters(tel[1]); err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	mustCheck(t, s)
	want := map[string]RouteStats{}
	for _, r := range s.Stats().Routes {
		want[r.Name] = r
	}
	if want["telemetry"].Messages != 3 || want["alarms"].Messages != 1 || want[DefaultRoute].Messages != 1 {
		t.Fatalf("routes %+v, want telemetry 3, alarms 1, default 1", s.Stats().Routes)
	}

	s = reopen(t, s, path, o)
	for _, r := range s.Stats().Routes {
		w := want[r.Name]
		w.Dropped = 0
		if r != w {
			t.Errorf("after reopen route %+v, want %+v", r, w)
		}
	}
	var schema byte
	_ = s.view(func(tx *bolt.Tx) error { schema = tx.Bucket(bucketMeta).Get(keySchema)[0]; return nil })
	if schema != schemaV3 {
		t.Errorf("layout version %d, want %d with routes", schema, schemaV3)
	}

	// Without the telemetry and alarms routes.
	if err := s.Delete(alarms[1]); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path, testOptions())
	names := []string{}
	for _, r := range s.Stats().Routes {
		names = append(names, r.Name)
		if r.Name == "telemetry" && (!r.Orphan || r.Messages != 0) {
			t.Errorf("telemetry after removal %+v, want an empty orphan: its messages moved to default", r)
		}
	}
	if !slices.Equal(names, []string{DefaultRoute, "telemetry"}) {
		t.Errorf("routes %v, want default and the emptied telemetry (the empty alarms route removed)", names)
	}
	var c Cursor
	got, err := s.ReadNext(&c, 10)
	if err != nil || len(got) != 4 || !slices.IsSorted(seqs(got)) {
		t.Fatalf("ReadNext after removal got %v, %v, want 4 messages in seq order", seqs(got), err)
	}
	for _, m := range got {
		if m.Route != DefaultRoute {
			t.Errorf("message %d to %s on route %q, want default", m.Seq, m.Address, m.Route)
		}
	}
	// New messages to old telemetry addresses go to the default route.
	if s.RouteOf("telemetry/t") != DefaultRoute {
		t.Error("an orphan route takes new messages")
	}
	mustCheck(t, s)
	s = reopen(t, s, path, testOptions())
	if r := s.Stats().Routes; len(r) != 1 || r[0].Name != DefaultRoute || r[0].Messages != 4 {
		t.Errorf("routes after another reopen %+v, want default only, with 4 messages", r)
	}
	if err := s.Delete(seqs(got)...); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
}

// A damaged file with several routes is salvaged route by route.
func TestRecoverRoutes(t *testing.T) {
	const n = 1500
	o := routedOptions(Route{}, Route{})
	path := t.TempDir() + "/store.db"
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 * n {
		address := "telemetry/t"
		if i%2 == 1 {
			address = "alarms/a"
		}
		s.AppendAsync(&Message{Address: address, Payload: make([]byte, 200)}, nil)
	}
	put(t, s, "other", 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The damage hits a page in the middle of the file; a page that turns out to be
	// free (nothing notices it) is passed over for the next one.
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o.Recover = true
	var rec *Recovered
	for try := 0; rec == nil && try < 32; try++ {
		page := len(file)/2/4096 + try
		if (page+1)*4096 > len(file) {
			break
		}
		damaged := bytes.Clone(file)
		copy(damaged[page*4096+16:], strings.Repeat("\xa5\x5a", 256))
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(path, o); err != nil {
			t.Fatalf("Open with Recover: %v", err)
		}
		if rec = s.Stats().Recovered; rec == nil {
			s.Close()
		}
	}
	if rec == nil {
		t.Fatal("no Recovered")
	}
	defer s.Close()
	t.Logf("salvaged %d, lost %d, cause: %s", rec.Salvaged, rec.Lost, rec.Cause)
	tel, alarms := routeStats(s, "telemetry"), routeStats(s, "alarms")
	if tel.Messages < n/2 || alarms.Messages < n/2 || tel.Messages > n || alarms.Messages > n {
		t.Fatalf("after salvage telemetry %d, alarms %d, want each between %d and %d", tel.Messages, alarms.Messages, n/2, n)
	}
	for _, m := range readAll(t, s) {
		if s.RouteOf(m.Address) != m.Route {
			t.Fatalf("message %d to %q salvaged onto route %q", m.Seq, m.Address, m.Route)
		}
	}
	mustCheck(t, s)
}

// A message larger than a whole budget is refused without making the route
// (or the store) look full: the next normal message is stored.
func TestOversizedMessageDoesNotBlock(t *testing.T) {
	for _, o := range []Options{
		{NoSync: true, Routes: []Route{{Name: "small", Addresses: []string{"small"}, MaxBytes: 1000}}},
		{NoSync: true, MaxBytes: 1000},
	} {
		s, _ := openTest(t, o)
		err := s.Append(context.Background(), &Message{Address: "small", Payload: make([]byte, 2000)})
		if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "exceed the whole") {
			t.Fatalf("oversized append: got %v, want ErrFull naming the budget", err)
		}
		if s.FullFor("small") || s.Full() {
			t.Fatalf("FullFor %v, Full %v after an oversized message, want false", s.FullFor("small"), s.Full())
		}
		put(t, s, "small", 1)
	}
}

// A corrupt record makes ReadNext fail without moving the cursor: once the
// reader dead-letters it, the messages before it are read.
func TestReadNextCorruptRecord(t *testing.T) {
	// Not openTest: the byte counters cannot be right after the damage (see
	// TestCorruptRecordInFile), so the final Check would fail.
	s, err := Open(t.TempDir()+"/store.db", testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, "a", 3)
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQueue).Bucket([]byte(DefaultRoute)).Put(seqKey(3), []byte{messageRecordV1, 0, 0})
	})
	if err != nil {
		t.Fatal(err)
	}
	var c Cursor
	_, err = s.ReadNext(&c, 10)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Seq != 3 {
		t.Fatalf("got %v, want a CorruptError for seq 3", err)
	}
	if err := s.DeadLetter(3, "corrupt"); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadNext(&c, 10)
	if err != nil || !slices.Equal(seqs(got), []uint64{1, 2}) {
		t.Fatalf("after dead-lettering got %v, %v, want [1 2]", seqs(got), err)
	}
}

// When the configured routes change, queued messages move to the route their
// address maps to now, keeping their seqs and so their order; an unchanged
// configuration moves nothing.
func TestReroute(t *testing.T) {
	var logs lockedBuffer
	o := testOptions()
	o.Logger = newTextLogger(&logs)
	o.Routes = []Route{{Name: "a", Addresses: []string{"x/*"}}, {Name: "b", Addresses: []string{"y/*"}, Priority: 5}}
	s, path := openTest(t, o)
	var want []uint64
	for i := range 6 {
		address := "x/1"
		if i%3 == 1 {
			address = "y/1"
		}
		want = append(want, put(t, s, address, 1)...)
	}
	put(t, s, "z", 2) // default: stays
	s = reopen(t, s, path, o)
	if strings.Contains(logs.String(), "routes changed") {
		t.Fatalf("messages moved although the routes did not change:\n%s", logs.String())
	}

	o.Routes = []Route{{Name: "a", Addresses: []string{"w/*"}}, {Name: "b", Addresses: []string{"y/*", "x/*"}, Priority: 5}}
	s = reopen(t, s, path, o)
	if !strings.Contains(logs.String(), "moved=4") {
		t.Fatalf("want 4 messages moved, log:\n%s", logs.String())
	}
	if a, b := routeStats(s, "a"), routeStats(s, "b"); a.Messages != 0 || b.Messages != 6 {
		t.Fatalf("after the change a %+v, b %+v, want 0 and 6", a, b)
	}
	var c Cursor
	got, err := s.ReadNext(&c, 100)
	if err != nil || !slices.Equal(seqs(got), want) {
		t.Fatalf("ReadNext got %v, %v, want route b first, in seq order %v", seqs(got), err, want)
	}
	mustCheck(t, s)
	n := strings.Count(logs.String(), "routes changed")
	s = reopen(t, s, path, o)
	if strings.Count(logs.String(), "routes changed") != n {
		t.Fatal("messages moved again at a reopen with the same routes")
	}
}
