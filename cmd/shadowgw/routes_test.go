package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// routesGateway starts a gateway without an uplink whose store has an alarms route
// (priority 10, backpressure) and a telemetry route of 50 messages with the given
// when-full policy, and returns it with its configuration file and metrics address.
func routesGateway(t *testing.T, telemetryWhenFull, extra string) (g *gateway, conf, maddr string) {
	t.Helper()
	dir := t.TempDir()
	maddr = freeAddr(t)
	conf = writeConfig(t, filepath.Join(dir, "shadowgw.conf"), "[metrics]\nlisten = "+maddr+"\n"+
		"[route \"alarms\"]\naddresses = alarms/*\npriority = 10\nwhen-full = backpressure\n"+
		"[route \"telemetry\"]\naddresses = telemetry\nmax-messages = 50\nwhen-full = "+telemetryWhenFull+"\n"+
		"[store]\ndir = "+filepath.Join(dir, "data")+"\n"+extra)
	g = startGateway(t, "--config", conf)
	waitHTTP(t, g, maddr)
	return g, conf, maddr
}

// routeOf returns the route called name from a status report.
func routeOf(t *testing.T, r statusReport, name string) routeReport {
	t.Helper()
	i := slices.IndexFunc(r.Routes, func(rt routeReport) bool { return rt.Name == name })
	if i < 0 {
		t.Fatalf("status has no route %q: %+v", name, r.Routes)
	}
	return r.Routes[i]
}

// TestRoutesBackpressure: a device fills the telemetry route to its budget and its link
// then gets no more credit, while another device's link to alarms/fire gets every
// message accepted. /status, the metrics and `shadowgw status` say why telemetry is
// full; once the queue is purged, the waiting device gets credit again.
func TestRoutesBackpressure(t *testing.T) {
	// A credit window of 1 makes "the link got no more credit" exact: the gateway tops
	// the credit up after each stored message, or withholds it.
	g, _, maddr := routesGateway(t, "backpressure", "[edge]\ncredit = 1\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The telemetry device sends one message at a time, for as long as it gets credit.
	conn, err := amqp.Dial(ctx, "amqp://"+g.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: "dev-telemetry"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "telemetry", nil)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	sent := make(chan error, 1)
	go func() {
		for seq := 0; ; seq++ {
			if err := snd.Send(ctx, amqp.NewMessage(body("dev-telemetry", seq, 100)), nil); err != nil {
				sent <- err
				return
			}
			if accepted.Add(1) == 51 {
				sent <- nil
				return
			}
		}
	}()
	checkFor(t, 30*time.Second, func() bool { return accepted.Load() >= 50 }, "50 telemetry messages accepted (%d)", accepted.Load())
	checkFor(t, 5*time.Second, func() bool {
		return g.log.count("level=WARN", "store full: devices sending to full routes get no new credit") > 0
	}, "the edge to say that it withholds credit; log:\n%s", g.log)

	// Meanwhile alarms flow.
	d := &device{id: "dev-alarms"}
	d.send(ctx, g.addr, "alarms/fire", 0, 100, 100, 10)
	if d.err != nil || len(d.accepted) != 100 {
		t.Fatalf("alarms device: %d of 100 accepted, err %v", len(d.accepted), d.err)
	}
	select {
	case err := <-sent:
		t.Fatalf("the telemetry device stopped waiting for credit: %v, %d accepted", err, accepted.Load())
	default:
	}
	if n := accepted.Load(); n != 50 {
		t.Fatalf("telemetry: %d messages accepted, want 50 (the route's budget)", n)
	}

	r := statusOf(t, maddr)
	tel, alarms, dflt := routeOf(t, r, "telemetry"), routeOf(t, r, "alarms"), routeOf(t, r, "default")
	telBytes := 50 * encodedSize(t, amqp.NewMessage(body("dev-telemetry", 0, 100)))
	if tel.Messages != 50 || tel.Bytes != telBytes || tel.FullReason != "route max-messages" || tel.MaxMessages != 50 || tel.WhenFull != "backpressure" || tel.Dropped != 0 {
		t.Errorf("telemetry route = %+v, want 50 messages of %d bytes, full by route max-messages", tel, telBytes)
	}
	alarmBytes := deviceBytes(t, "dev-alarms", 0, 100, 100)
	if alarms.Messages != 100 || alarms.Bytes != alarmBytes || alarms.FullReason != "" || alarms.Priority != 10 {
		t.Errorf("alarms route = %+v, want 100 messages of %d bytes, priority 10, not full", alarms, alarmBytes)
	}
	if dflt.Messages != 0 || dflt.FullReason != "" {
		t.Errorf("default route = %+v, want empty", dflt)
	}
	if r.Routes[0].Name != "alarms" {
		t.Errorf("routes not highest priority first: %+v", r.Routes)
	}
	if r.Store.Messages != 150 || r.Store.FullReason != "" || r.Devices.Rejected != 0 || r.Devices.Messages != 150 {
		t.Errorf("store %+v, devices %+v; want 150 messages, none rejected, the store not full as a whole", r.Store, r.Devices)
	}
	wantProblem := "route telemetry is full (route max-messages): devices sending to it get no credit"
	if !slices.Equal(r.Problems, []string{wantProblem}) {
		t.Errorf("problems = %q, want %q", r.Problems, wantProblem)
	}
	fams := scrape(t, maddr)
	for _, c := range []struct {
		name, route string
		want        float64
	}{
		{"shadowgw_store_full", "telemetry", 1}, {"shadowgw_store_full", "alarms", 0},
		{"shadowgw_store_messages", "telemetry", 50}, {"shadowgw_store_messages", "alarms", 100},
	} {
		if got := value(t, fams, c.name, "route", c.route); got != c.want {
			t.Errorf("%s{route=%q} = %v, want %v", c.name, c.route, got, c.want)
		}
	}
	out, err := runStatus(t, "--addr", maddr)
	for _, want := range []string{"\nPROBLEM      " + wantProblem + "\n",
		"backlog      alarms (priority 10, backpressure): 100 messages, " + formatBytes(alarmBytes) + ", oldest ",
		"telemetry (priority 0, backpressure, max 50 messages): 50 messages, " + formatBytes(telBytes) + ", oldest ", ", FULL (route max-messages)\n"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("shadowgw status: %v; output lacks %q:\n%s", err, want, out)
		}
	}

	// Room again: the waiting device gets credit without asking.
	if code, body := post(t, maddr, "/queue/purge"); code != http.StatusOK || !strings.Contains(body, `"count":150`) {
		t.Fatalf("POST /queue/purge = %d %s", code, body)
	}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("telemetry after the purge: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the telemetry device got no credit within 10s after the purge (%d accepted)", accepted.Load())
	}
	if tel := routeOf(t, statusOf(t, maddr), "telemetry"); tel.Messages != 1 || tel.FullReason != "" {
		t.Errorf("telemetry after the purge = %+v, want 1 message, not full", tel)
	}
	conn.Close()
	g.stop()
}

// TestRoutesDropOldest: with when-full = drop-oldest, 200 messages to a route of 50
// are all accepted; the route keeps the newest 50 and counts 150 dropped.
func TestRoutesDropOldest(t *testing.T) {
	g, conf, maddr := routesGateway(t, "drop-oldest", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &device{id: "dev-telemetry"}
	d.send(ctx, g.addr, "telemetry", 0, 200, 100, 10)
	if d.err != nil || len(d.accepted) != 200 {
		t.Fatalf("telemetry device: %d of 200 accepted, err %v", len(d.accepted), d.err)
	}
	a := &device{id: "dev-alarms"}
	a.send(ctx, g.addr, "alarms/smoke", 0, 5, 10, 5)
	if a.err != nil || len(a.accepted) != 5 {
		t.Fatalf("alarms device: %d of 5 accepted, err %v", len(a.accepted), a.err)
	}

	r := statusOf(t, maddr)
	tel, alarms := routeOf(t, r, "telemetry"), routeOf(t, r, "alarms")
	newest := deviceBytes(t, "dev-telemetry", 150, 50, 100) // the newest 50 of 0..199
	if tel.Messages != 50 || tel.Bytes != newest || tel.Dropped != 150 || tel.FullReason != "" || tel.WhenFull != "drop-oldest" {
		t.Errorf("telemetry route = %+v, want 50 messages of %d bytes, 150 dropped, not full", tel, newest)
	}
	if alarms.Messages != 5 || alarms.Dropped != 0 {
		t.Errorf("alarms route = %+v, want 5 messages, none dropped", alarms)
	}
	if r.Store.Messages != 55 || r.Store.Dropped != 150 || len(r.Problems) != 0 {
		t.Errorf("store = %+v, problems %q; want 55 messages, 150 dropped, no problems", r.Store, r.Problems)
	}
	fams := scrape(t, maddr)
	if got := value(t, fams, "shadowgw_store_messages_dropped_total", "route", "telemetry"); got != 150 {
		t.Errorf("shadowgw_store_messages_dropped_total{route=telemetry} = %v, want 150", got)
	}
	if got := value(t, fams, "shadowgw_store_full", "route", "telemetry"); got != 0 {
		t.Errorf("shadowgw_store_full{route=telemetry} = %v, want 0", got)
	}
	checkFor(t, 5*time.Second, func() bool {
		return g.log.count("level=WARN", "dropped the oldest messages", "route=telemetry") > 0
	}, "a log line about the drops; log:\n%s", g.log)

	// What is left is the newest 50, each listed with its route, through the running
	// gateway and from the file once it stopped.
	for _, running := range []bool{true, false} {
		if !running {
			g.stop()
		}
		out, err := exec.Command(binary, "queue", "--config", conf, "--json", "list").CombinedOutput()
		if err != nil {
			t.Fatalf("shadowgw queue list (running %v): %v\n%s", running, err, out)
		}
		var msgs []store.MessageInfo
		if err := json.Unmarshal(out, &msgs); err != nil {
			t.Fatalf("shadowgw queue list (running %v): %v\n%s", running, err, out)
		}
		var routes []string
		for _, m := range msgs {
			routes = append(routes, m.Route)
		}
		want := append(slices.Repeat([]string{"telemetry"}, 50), slices.Repeat([]string{"alarms"}, 5)...)
		if !slices.Equal(routes, want) || msgs[0].Seq != 151 || msgs[49].Seq != 200 || msgs[50].Address != "alarms/smoke" {
			t.Errorf("queue list (running %v): routes %q, first seq %d; want 50 telemetry from seq 151, then 5 alarms", running, routes, msgs[0].Seq)
		}
	}
}

// encodedSize returns the size of m's encoding: the payload bytes the store counts.
func encodedSize(t *testing.T, m *amqp.Message) uint64 {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return uint64(len(b))
}

// deviceBytes returns the payload bytes of n messages of a device (see device.send)
// from seq from on.
func deviceBytes(t *testing.T, id string, from, n, size int) uint64 {
	t.Helper()
	var sum uint64
	for seq := from; seq < from+n; seq++ {
		sum += encodedSize(t, deviceMessage(id, seq, size))
	}
	return sum
}

// post sends an empty POST to http://addr/path and returns the status code and body.
func post(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}
