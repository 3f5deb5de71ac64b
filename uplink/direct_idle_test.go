package uplink

import (
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// A direct route's cloud link that no device link uses is closed after the idle
// time, and attached again for the next device; one in use stays.
func TestDirectIdleClose(t *testing.T) {
	s := cloudtest.StartProton(t)
	u := startUplink(t, protonConfig(s), openStore(t, false), nil)
	d := u.Direct()
	const idle = 300 * time.Millisecond
	d.SetIdle(idle)
	d.AddRoute("fast")

	send := func(tg *DirectTarget) {
		t.Helper()
		checkFor(t, 20*time.Second, tg.Ready, func() string { return "the direct link did not attach" })
		got := make(chan amqp.DeliveryState, 1)
		p, _ := (&amqp.Message{Data: [][]byte{[]byte("x")}}).MarshalBinary()
		tg.Forward(p, "dev", time.Now(), false, func(st amqp.DeliveryState) { got <- st })
		select {
		case st := <-got:
			if _, ok := st.(*amqp.StateAccepted); !ok {
				t.Fatalf("outcome %T, want accepted", st)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no outcome")
		}
	}
	detached := func() int { return cloudtest.Count(s.Events(), "detached", "idle-target") }

	used := d.Target("fast", "idle-target", "dev")
	send(used)
	// In use: it stays attached over several idle times.
	for end := time.Now().Add(4 * idle); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if detached() != 0 || !used.Ready() {
			t.Fatal("a direct link in use was closed")
		}
	}
	used.Release()
	s.WaitEvent(t, 10*time.Second, "the idle link's detach", func([]cloudtest.Event) bool { return detached() == 1 })
	if st := d.Status(); len(st) != 1 || st[0].Targets != 0 {
		t.Errorf("status after the idle close: %+v, want route fast with no targets", st)
	}
	// The next device link gets a new target, attached again.
	again := d.Target("fast", "idle-target", "dev")
	if again == used {
		t.Error("the closed target was handed out again")
	}
	send(again)
	again.Release()
}
