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

// priorityWindow is how many messages of an address, read before messages of a
// higher priority arrived, may still be sent before them with the default settings:
// the rest of a read batch, what waits in the address's lane, and what is in flight.
const priorityWindow = min(DefaultInFlight, readBatch) + min(DefaultInFlight, laneQueue) + DefaultInFlight

// appendNumbered stores n messages for address with application property n = from,
// from+1, ... and returns their seqs.
func appendNumbered(t testing.TB, st *store.Store, address string, from, n int) []uint64 {
	t.Helper()
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = encode(t, &amqp.Message{ApplicationProperties: map[string]any{"n": int64(from + i)}, Data: [][]byte{make([]byte, 100)}})
	}
	return appendPayloads(t, st, address, "dev", payloads...)
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
	appendNumbered(t, st, "prio-telemetry", 0, telemetry)
	alarmSeqs := appendNumbered(t, st, "alarms.prio-drain", 0, alarms)
	src := &deleteLog{Store: st}
	cfg, _ := testConfig(t, b)
	startUplink(t, cfg, src, nil)
	// The store is empty once the last delete committed, but deleteLog records the
	// seqs only after Delete returned: wait for both.
	checkFor(t, 30*time.Second, func() bool { return stored(t, st) == 0 && len(src.deleted()) >= telemetry+alarms }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0; %d deletes recorded, want %d", stored(t, st), len(src.deleted()), telemetry+alarms)
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
	// The alarms are read first; the telemetry's lane sends while the alarms' lane
	// attaches its link and sends, so some telemetry may go first.
	bound := 2 * priorityWindow
	t.Logf("%d of %d telemetry messages were accepted before the last of %d alarms (bound %d)", before, telemetry, alarms, bound)
	if len(del) != telemetry+alarms || before > bound {
		t.Errorf("got %d deletes, %d telemetry before the last alarm, want %d deletes, at most %d telemetry before the last alarm",
			len(del), before, telemetry+alarms, bound)
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
	appendNumbered(t, st, "prio-backlog", 0, telemetry)
	// One alarm goes first and opens the alarms' link: the window measured below
	// is the reading order's, not the time RabbitMQ takes to attach a new link
	// (during which the telemetry goes on).
	appendNumbered(t, st, "alarms.prio-overtake", 0, 1)
	src := &deleteLog{Store: st}
	cfg, _ := testConfig(t, b)
	u := startUplink(t, cfg, src, nil)
	checkFor(t, 30*time.Second, func() bool { return u.Status().Forwarded >= 2000 }, func() string {
		return fmt.Sprintf("status %+v, want the backlog draining", u.Status())
	})

	// The delete log is in the order the cloud accepted the messages, but it may
	// trail the acceptances; Forwarded does not.
	mark := int(u.Status().Forwarded)
	alarmSeqs := appendNumbered(t, st, "alarms.prio-overtake", 1, alarms)
	isAlarm := func(seq uint64) bool { return seq >= alarmSeqs[0] }
	left := 0 // messages stored when the last alarm was accepted
	checkFor(t, 20*time.Second, func() bool {
		left = stored(t, st)
		n := 0
		for _, seq := range src.deleted() {
			n += btoi(isAlarm(seq))
		}
		return n == alarms
	}, func() string { return "alarms not all accepted" })
	ahead, n := -mark, 0 // telemetry accepted after the alarms arrived and before the last of them
	for _, seq := range src.deleted() {
		if n == alarms {
			break
		}
		if isAlarm(seq) {
			n++
		} else {
			ahead++
		}
	}
	// What was read before the alarms arrived goes first (priorityWindow), and the
	// telemetry's lane goes on while the alarms are on their way.
	bound := 2 * priorityWindow
	t.Logf("alarms appended after %d messages were accepted; %d telemetry messages accepted after them and before the last alarm (bound %d); %d of %d stored then",
		mark, ahead, bound, left, telemetry)
	if ahead > bound || left < telemetry/4 {
		t.Errorf("%d telemetry messages accepted after the alarms arrived and before the last of them, %d stored then; want at most %d, and most of the backlog still stored",
			ahead, left, bound)
	}
	checkNumbered(t, "alarms", b.Receive(t, "/queue/alarms.prio-overtake", 1+alarms, 20*time.Second))
	checkFor(t, 30*time.Second, func() bool { return stored(t, st) == 0 }, func() string {
		return fmt.Sprintf("store holds %d messages, want 0", stored(t, st))
	})
	if n := u.Status().Forwarded; n != telemetry+1+alarms {
		t.Errorf("forwarded: got %d, want %d", n, telemetry+1+alarms)
	}
}
