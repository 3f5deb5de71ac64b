package uplink

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// deleteLog is the store as a Source that also records, in order, the seqs the
// uplink deleted: the messages the cloud accepted, in the order it accepted them
// (give or take one deleting batch).
type deleteLog struct {
	*store.Store

	mu   sync.Mutex
	seqs []uint64
}

func (d *deleteLog) Delete(seqs ...uint64) error {
	if err := d.Store.Delete(seqs...); err != nil {
		return err
	}
	d.mu.Lock()
	d.seqs = append(d.seqs, seqs...)
	d.mu.Unlock()
	return nil
}

// deleted returns the seqs deleted so far, in order.
func (d *deleteLog) deleted() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.seqs)
}

// alarmRoutes puts the addresses "alarms.*" on a route of priority 10; the rest
// goes to the default route, priority 0.
var alarmRoutes = []store.Route{{Name: "alarms", Addresses: []string{"alarms.*"}, Priority: 10}}

// appendNumbered stores n messages for address with application property n = 0,
// 1, ... and returns their seqs.
func appendNumbered(t testing.TB, st *store.Store, address string, n int) []uint64 {
	t.Helper()
	msgs := make([]*store.Message, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range msgs {
		p := encode(t, &amqp.Message{ApplicationProperties: map[string]any{"n": int64(i)}, Data: [][]byte{make([]byte, 100)}})
		msgs[i] = &store.Message{Address: address, Source: "dev", Payload: p}
		wg.Add(1)
		st.AppendAsync(msgs[i], func(err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	seqs := make([]uint64, n)
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	return seqs
}

// checkNumbered checks that got holds n = 0, 1, ... in order.
func checkNumbered(t testing.TB, what string, got []*amqp.Message) {
	t.Helper()
	for i, m := range got {
		if n := m.ApplicationProperties["n"]; n != int64(i) {
			t.Fatalf("%s: message %d: got n=%v, want %d (order lost)", what, i, n, i)
		}
	}
}

// testPriorityDrain stores a telemetry backlog and then some alarms, as an outage
// leaves them, and starts the uplink: every alarm must be accepted before all but
// the first read batch and in-flight window of telemetry.
func testPriorityDrain(t *testing.T, b *cloudtest.Broker) {
	const telemetry, alarms = 3000, 50
	st := openStoreWith(t, store.Options{NoSync: true, Routes: alarmRoutes})
	appendNumbered(t, st, "prio-telemetry", telemetry)
	alarmSeqs := appendNumbered(t, st, "alarms.prio-drain", alarms)
	src := &deleteLog{Store: st}
	cfg, _ := testConfig(t, b)
	startUplink(t, cfg, src, nil)
	checkFor(t, 30*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})

	isAlarm := func(seq uint64) bool { return seq >= alarmSeqs[0] }
	del := src.deleted()
	lastAlarm := -1
	for i, seq := range del {
		if isAlarm(seq) {
			lastAlarm = i
		}
	}
	before := 0 // telemetry accepted before the last alarm
	for _, seq := range del[:lastAlarm+1] {
		if !isAlarm(seq) {
			before++
		}
	}
	window := min(DefaultInFlight, readBatch) + DefaultInFlight
	t.Logf("%d of %d telemetry messages were accepted before the last of %d alarms (window %d)", before, telemetry, alarms, window)
	if len(del) != telemetry+alarms || before > window {
		t.Errorf("got %d deletes, %d telemetry before the last alarm, want %d deletes, at most %d telemetry before the last alarm",
			len(del), before, telemetry+alarms, window)
	}
	checkNumbered(t, "alarms", b.Receive(t, "/queue/alarms.prio-drain", alarms, 20*time.Second))
	checkNumbered(t, "telemetry", b.Receive(t, "/queue/prio-telemetry", telemetry, 30*time.Second))
	b.ExpectEmpty(t, "/queue/alarms.prio-drain", 100*time.Millisecond)
	b.ExpectEmpty(t, "/queue/prio-telemetry", 100*time.Millisecond)
}

// testPriorityOvertake appends alarms while a large telemetry backlog drains: they
// must be accepted before the telemetry read after they arrived, so that at most
// about one read batch and in-flight window of telemetry goes before them.
func testPriorityOvertake(t *testing.T, b *cloudtest.Broker) {
	const telemetry, alarms = 20000, 20
	st := openStoreWith(t, store.Options{NoSync: true, Routes: alarmRoutes})
	appendNumbered(t, st, "prio-backlog", telemetry)
	src := &deleteLog{Store: st}
	cfg, _ := testConfig(t, b)
	u := startUplink(t, cfg, src, nil)
	checkFor(t, 30*time.Second, func() bool { return u.Status().Forwarded >= 2000 }, func() string {
		return fmt.Sprintf("status %+v, want the backlog draining", u.Status())
	})

	mark := len(src.deleted())
	alarmSeqs := appendNumbered(t, st, "alarms.prio-overtake", alarms)
	isAlarm := func(seq uint64) bool { return seq >= alarmSeqs[0] }
	left := 0 // messages stored when the last alarm was accepted
	checkFor(t, 20*time.Second, func() bool {
		left = stored(t, st)
		n := 0
		for _, seq := range src.deleted()[mark:] {
			n += btoi(isAlarm(seq))
		}
		return n == alarms
	}, func() string { return "alarms not all accepted" })
	ahead, n := 0, 0 // telemetry accepted after the alarms arrived and before the last of them
	for _, seq := range src.deleted()[mark:] {
		if n == alarms {
			break
		}
		if isAlarm(seq) {
			n++
		} else {
			ahead++
		}
	}
	window := min(DefaultInFlight, readBatch) + DefaultInFlight
	t.Logf("alarms appended after %d messages were accepted; %d telemetry messages accepted after them and before the last alarm (window %d); %d of %d stored then",
		mark, ahead, window, left, telemetry)
	if ahead > 2*window || left < telemetry/4 {
		t.Errorf("%d telemetry messages accepted after the alarms arrived and before the last of them, %d stored then; want at most %d, and most of the backlog still stored",
			ahead, left, 2*window)
	}
	checkNumbered(t, "alarms", b.Receive(t, "/queue/alarms.prio-overtake", alarms, 20*time.Second))
	checkFor(t, 30*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if n := u.Status().Forwarded; n != telemetry+alarms {
		t.Errorf("forwarded: got %d, want %d", n, telemetry+alarms)
	}
}
