package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/uplink"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// directRoute is the [route] section of the direct tests: addresses direct-* go
// straight to the cloud, the rest through the store.
const directRoute = "[route \"fast\"]\naddresses = direct-*\nmode = direct\n"

// TestDirectRoutes: direct routes through RabbitMQ over TLS (issue 14, tests 1, 3, 5).
func TestDirectRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start RabbitMQ")
	}
	b := cloudtest.StartRabbitMQ(t)
	t.Run("10000 messages once, nothing written", func(t *testing.T) { testDirectNothingWritten(t, b) })
	t.Run("outage blocks only the direct route", func(t *testing.T) { testDirectOutage(t, b) })
}

// storeFile returns the size and modification time of the store's file.
func storeStamp(t *testing.T, dataDir string) (int64, time.Time) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dataDir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size(), fi.ModTime()
}

// metric returns the value of the metric line that starts with name (labels included).
func metric(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(g.scrape(name), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in %q", name, g.scrape("shadowgw_"))
	return 0
}

// Test 1: 10,000 messages through a direct route arrive once, in order per device;
// the store's file is not written for them and nothing is queued.
func testDirectNothingWritten(t *testing.T, b *cloudtest.Broker) {
	dir := t.TempDir()
	g := startGateway(t, uplinkArgs(t, b, dir, directRoute)...)
	// The direct link attaches once the uplink is up; the first send waits for credit.
	sendAll(t, g.addr, "direct-once", 1, 1, 64)
	receiveExactlyOnce(t, b, "/queue/direct-once", 1, 64, time.Minute)

	size0, mtime0 := storeStamp(t, dir)
	commits0 := metric(t, g, "shadowgw_store_commits_total")
	written0 := metric(t, g, "shadowgw_disk_written_bytes_total")
	const devices, per, size = 2, 5000, 100
	_, elapsed := sendAll(t, g.addr, "direct-once", devices, per, size)
	t.Logf("%d messages accepted by the cloud through the direct route in %v (%.0f msg/s)",
		devices*per, elapsed.Round(time.Millisecond), float64(devices*per)/elapsed.Seconds())
	receiveExactlyOnce(t, b, "/queue/direct-once", devices*per, size, time.Minute)

	size1, mtime1 := storeStamp(t, dir)
	if size1 != size0 || !mtime1.Equal(mtime0) {
		t.Errorf("store file changed: size %d → %d, mtime %v → %v", size0, size1, mtime0, mtime1)
	}
	if c := metric(t, g, "shadowgw_store_commits_total"); c != commits0 {
		t.Errorf("store commits %v → %v, want no commit for direct messages", commits0, c)
	}
	t.Logf("bytes written by the process meanwhile (write_bytes): %v", metric(t, g, "shadowgw_disk_written_bytes_total")-written0)
	if q := g.scrape(`shadowgw_store_messages{route="fast"}`); !strings.HasSuffix(q, " 0") {
		t.Errorf("queued on the direct route: %q, want 0", q)
	}
	if a := g.scrape(`shadowgw_direct_outcomes_total{outcome="accepted",route="fast"}`); !strings.HasSuffix(a, fmt.Sprintf(" %d", devices*per+1)) {
		t.Errorf("direct accepted outcomes: %q, want %d", a, devices*per+1)
	}
	g.stop()
}

// rawDevice is a device speaking AMQP frame by frame, to see the gateway's flows.
type rawDevice struct {
	t      *testing.T
	nc     net.Conn
	br     *bufio.Reader
	frames chan rawFrame
}

// rawFrame is a frame the device received, and when.
type rawFrame struct {
	b  frame.Body
	at time.Time
}

// attachRaw connects without SASL and attaches a sending link (handle 0) to address.
func attachRaw(t *testing.T, addr, address string) *rawDevice {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	d := &rawDevice{t: t, nc: nc, br: bufio.NewReader(nc), frames: make(chan rawFrame, 1024)}
	nc.Write(frame.ProtoAMQP[:])
	if _, err := io.ReadFull(d.br, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	d.send(&frame.Open{ContainerID: "raw-direct", MaxFrameSize: 65536, ChannelMax: 1})
	d.send(&frame.Begin{NextOutgoingID: 0, IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 8})
	var w codec.Writer
	w.Descriptor(frame.CodeTarget)
	m := w.BeginList()
	w.String(address)
	w.EndList(m, 1)
	d.send(&frame.Attach{Name: "raw-" + address, Handle: 0, Role: frame.RoleSender, Target: w.Bytes(), HasDeliveryCount: true})
	go func() {
		defer close(d.frames)
		for {
			var h [frame.HeaderSize]byte
			if _, err := io.ReadFull(d.br, h[:]); err != nil {
				return
			}
			hd, err := frame.ParseHeader(h, 1<<20)
			if err != nil {
				return
			}
			buf := make([]byte, hd.Size-frame.HeaderSize)
			if _, err := io.ReadFull(d.br, buf); err != nil {
				return
			}
			b, _, err := frame.Decode(hd.Type, buf[int(hd.DOff)*4-frame.HeaderSize:])
			if err == nil && b != nil {
				d.frames <- rawFrame{b, time.Now()}
			}
		}
	}()
	return d
}

func (d *rawDevice) send(b frame.Body) {
	if _, err := d.nc.Write(frame.Append(nil, frame.TypeAMQP, 0, b, nil)); err != nil {
		d.t.Fatal(err)
	}
}

// transfer sends an unsettled message with delivery-id id.
func (d *rawDevice) transfer(id uint32) {
	payload, err := amqp.NewMessage([]byte("raw " + strconv.Itoa(int(id)))).MarshalBinary()
	if err != nil {
		d.t.Fatal(err)
	}
	tr := &frame.Transfer{Handle: 0, DeliveryID: id, HasDeliveryID: true, DeliveryTag: []byte{byte(id)}, HasDeliveryTag: true}
	if _, err := d.nc.Write(frame.Append(nil, frame.TypeAMQP, 0, tr, payload)); err != nil {
		d.t.Fatal(err)
	}
}

// waitFlow waits up to timeout for a link flow whose credit satisfies want, and
// returns when it arrived. Dispositions seen meanwhile are passed to disp, if not nil.
func (d *rawDevice) waitFlow(timeout time.Duration, what string, want func(credit uint32) bool, disp func(*frame.Disposition)) time.Time {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-d.frames:
			if !ok {
				d.t.Fatalf("connection ended while waiting for a flow with %s", what)
			}
			switch b := f.b.(type) {
			case *frame.Flow:
				if b.HasHandle && b.HasLinkCredit && want(b.LinkCredit) {
					return f.at
				}
			case *frame.Disposition:
				if disp != nil {
					disp(b)
				}
			case *frame.Detach, *frame.End, *frame.Close:
				d.t.Fatalf("while waiting for a flow with %s: %#v", what, b)
			}
		case <-deadline:
			d.t.Fatalf("no flow with %s within %v", what, timeout)
		}
	}
}

// Tests 3 and 5: the cloud goes down: within 1 s the device on the direct route has no
// credit, and its deliveries in flight are released, never accepted; a device on a
// stored route keeps sending and is acknowledged. The cloud back, the direct route gets
// credit again and the stored messages arrive.
func testDirectOutage(t *testing.T, b *cloudtest.Broker) {
	g := startGateway(t, uplinkArgs(t, b, t.TempDir(), directRoute)...)
	sendAll(t, g.addr, "stored-out", 1, 1, 64) // the queue exists before the outage
	receiveExactlyOnce(t, b, "/queue/stored-out", 1, 64, time.Minute)

	raw := attachRaw(t, g.addr, "direct-out")
	raw.nc.SetDeadline(time.Now().Add(3 * time.Minute))
	raw.waitFlow(30*time.Second, "credit", func(c uint32) bool { return c > 0 }, nil)

	// A hung broker takes the transfers without an outcome; then it dies.
	b.Pause()
	paused := true
	defer func() {
		if paused {
			b.Start()
		}
	}()
	for id := range uint32(3) {
		raw.transfer(id)
	}
	time.Sleep(200 * time.Millisecond) // let the gateway pass them on to the paused broker (not an assertion)
	lost := time.Now()                 // SIGKILL is sent at once; Kill then waits for the processes to end
	b.Kill()
	outcomes := map[uint32]uint64{}
	onDisp := func(d *frame.Disposition) {
		last := d.First
		if d.HasLast {
			last = d.Last
		}
		for id := d.First; id <= last; id++ {
			outcomes[id] = frame.StateCode(d.State)
		}
	}
	at := raw.waitFlow(5*time.Second, "no credit", func(c uint32) bool { return c == 0 }, onDisp)
	t.Logf("device's credit taken back %v after the cloud was killed", at.Sub(lost).Round(time.Millisecond))
	if at.Sub(lost) > time.Second {
		t.Errorf("credit taken back %v after the loss, want within 1s", at.Sub(lost))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(outcomes) < 3 && time.Now().Before(deadline) {
		select {
		case f := <-raw.frames:
			if d, ok := f.b.(*frame.Disposition); ok {
				onDisp(d)
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	for id := range uint32(3) {
		if c := outcomes[id]; c != frame.CodeReleased && c != frame.CodeModified {
			t.Errorf("delivery %d in flight at the loss: outcome %#x, want released (%#x)", id, c, frame.CodeReleased)
		}
	}

	// Test 5: the stored route keeps taking messages meanwhile.
	const n = 200
	ds, elapsed := sendAll(t, g.addr, "stored-out", 1, n, 64)
	t.Logf("%d messages on the stored route accepted during the outage in %v", len(ds[0].accepted), elapsed.Round(time.Millisecond))
	// And the direct route takes none: a go-amqp device cannot send.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	blocked := &device{id: "blocked"}
	blocked.send(ctx, g.addr, "direct-out", 0, 1, 64, 1)
	cancel()
	if len(blocked.accepted) != 0 {
		t.Errorf("a direct-route message was accepted with the cloud down")
	}

	b.Start()
	paused = false
	back := time.Now()
	raw.waitFlow(time.Minute, "credit again", func(c uint32) bool { return c > 0 }, nil)
	t.Logf("direct route has credit again %v after the broker was started", time.Since(back).Round(time.Millisecond))
	receiveExactlyOnce(t, b, "/queue/stored-out", n, 64, time.Minute)
	g.stop()
}

// TestDirectOutcomes: the cloud's outcome is the device's (issue 14, test 2), through
// the Proton test server: accepted, rejected with the cloud's condition, released,
// modified; a pre-settled delivery goes pre-settled; the source annotation is set.
func TestDirectOutcomes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests start a Proton server")
	}
	s := cloudtest.StartProton(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "shadowgw.conf")
	text := "[uplink]\nreconnect-min = 100ms\nreconnect-max = 1s\n[metrics]\nlisten = " + freeAddr(t) + "\n" + directRoute
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"), "--uplink", s.URL, "--uplink-ca", s.CAFile)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := amqp.Dial(ctx, "amqp://"+g.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: "dev-outcomes"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "direct-outcomes", nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(id, outcome string) amqp.DeliveryState {
		t.Helper()
		m := amqp.NewMessage([]byte(outcome))
		m.Properties = &amqp.MessageProperties{MessageID: id}
		m.ApplicationProperties = map[string]any{cloudtest.PropOutcome: outcome, cloudtest.PropOutcomeTimes: int64(1)}
		r, err := snd.SendWithReceipt(ctx, m, nil)
		if err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		st, err := r.Wait(ctx)
		if err != nil {
			t.Fatalf("outcome of %s: %v", id, err)
		}
		return st
	}
	if st, ok := ask("o-accept", cloudtest.OutcomeAccept).(*amqp.StateAccepted); !ok {
		t.Errorf("accepted by the cloud: the device got %#v", st)
	}
	st := ask("o-reject", cloudtest.OutcomeReject)
	if r, ok := st.(*amqp.StateRejected); !ok || r.Error == nil || r.Error.Condition != "amqp:precondition-failed" {
		t.Errorf("rejected by the cloud: the device got %#v, want rejected with amqp:precondition-failed", st)
	} else {
		t.Logf("rejected: %s: %s", r.Error.Condition, r.Error.Description)
	}
	if st, ok := ask("o-release", cloudtest.OutcomeRelease).(*amqp.StateReleased); !ok {
		t.Errorf("released by the cloud: the device got %#v", st)
	}
	st = ask("o-modified", cloudtest.OutcomeModifiedFailed)
	if m, ok := st.(*amqp.StateModified); !ok || !m.DeliveryFailed || m.UndeliverableHere {
		t.Errorf("modified (delivery-failed) by the cloud: the device got %#v", st)
	}

	// Pre-settled: passed on pre-settled, at most once.
	pre, err := sess.NewSender(ctx, "direct-presettled", &amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	m := amqp.NewMessage([]byte("pre"))
	m.Properties = &amqp.MessageProperties{MessageID: "o-presettled"}
	if err := pre.Send(ctx, m, nil); err != nil {
		t.Fatal(err)
	}

	ds := s.WaitFor(t, 30*time.Second, "all five messages", func(ds []cloudtest.Delivery) bool { return len(ds) >= 5 })
	seen := map[string]int{}
	for _, d := range ds {
		seen[d.ID]++
		if src := d.Annotations[uplink.SourceAnnotation]; src != "dev-outcomes" {
			t.Errorf("%s: %s = %q, want dev-outcomes", d.ID, uplink.SourceAnnotation, src)
		}
	}
	for _, id := range []string{"o-accept", "o-reject", "o-release", "o-modified", "o-presettled"} {
		if seen[id] != 1 {
			t.Errorf("%s reached the cloud %d times, want once (the gateway never sends again)", id, seen[id])
		}
	}
	if c := metric(t, g, "shadowgw_store_commits_total"); c != 0 {
		t.Errorf("store commits: %v, want 0", c)
	}
	for _, o := range []string{"accepted", "rejected", "released", "modified", "presettled"} {
		l := g.scrape(`shadowgw_direct_outcomes_total{outcome="` + o + `",route="fast"}`)
		if !strings.HasSuffix(l, " 1") {
			t.Errorf("metric of %s outcomes: %q, want 1", o, l)
		}
	}
	g.stop()
}
