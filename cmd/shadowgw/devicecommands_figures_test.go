package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestCommandsOldestAge checks the oldest-age figures of a device's command queue
// against a real run: the metric, `shadowgw status --json`, `shadowgw queue commands`
// (JSON and text) all give the age of the queue's head as the gateway took it from
// RabbitMQ, and the age follows the head when the device takes a command.
func TestCommandsOldestAge(t *testing.T) {
	b := cloudtest.StartRabbitMQ(t)
	args, _ := commandArgs(t, b, t.TempDir(), "")
	conf := args[1]
	g := startGateway(t, args...)
	const dev = "aged"

	// send sends command i for dev and returns when the gateway has queued n; the
	// command was received within the interval it returns.
	send := func(i, n int) (time.Time, time.Time) {
		before := time.Now()
		b.Send(t, deviceCmdQueue, commandFor(dev, i, i%2 == 1))
		waitMetric(t, g, `shadowgw_commands_queued{device="`+dev+`"}`, float64(n), 30*time.Second)
		return before, time.Now()
	}
	// within checks that what reports an age for a head received within [from, to],
	// read within [r0, r1], gives one between r0-to and r1-from.
	within := func(what string, got float64, from, to, r0, r1 time.Time) {
		t.Helper()
		lo, hi := r0.Sub(to).Seconds()-0.01, r1.Sub(from).Seconds()+0.01
		if got < lo || got > hi {
			t.Errorf("%s: oldest age %.3f s, want %.3f to %.3f", what, got, lo, hi)
		}
	}
	// figures reads every report of the queue's oldest age and checks each.
	figures := func(from, to time.Time, queued int) {
		t.Helper()
		r0 := time.Now()
		metric := metricSum(g, `shadowgw_commands_oldest_age_seconds{device="`+dev+`"}`)
		out, err := exec.Command(binary, "status", "--json", "--config", conf).Output()
		if err != nil {
			t.Fatalf("shadowgw status --json: %v", err)
		}
		var st struct {
			Commands struct {
				Queues []commandQueue `json:"queues"`
			} `json:"commands"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		qj, err := exec.Command(binary, "queue", "--json", "--config", conf, "commands").Output()
		if err != nil {
			t.Fatalf("shadowgw queue --json commands: %v", err)
		}
		var rep commandsReply
		if err := json.Unmarshal(qj, &rep); err != nil {
			t.Fatalf("queue JSON: %v\n%s", err, qj)
		}
		text, err := exec.Command(binary, "queue", "--config", conf, "commands").Output()
		if err != nil {
			t.Fatalf("shadowgw queue commands: %v", err)
		}
		r1 := time.Now()

		within("metric shadowgw_commands_oldest_age_seconds", metric, from, to, r0, r1)
		if len(st.Commands.Queues) != 1 || st.Commands.Queues[0].Device != dev || st.Commands.Queues[0].Messages != uint64(queued) {
			t.Fatalf("status queues %+v, want %d for %s", st.Commands.Queues, queued, dev)
		}
		within("status oldest_age_seconds", st.Commands.Queues[0].OldestAge, from, to, r0, r1)
		if len(rep.Queues) != 1 || rep.Queues[0].Messages != uint64(queued) {
			t.Fatalf("queue --json: %+v, want %d for %s", rep.Queues, queued, dev)
		}
		if o := rep.Queues[0].Oldest; o.Before(from.Add(-10*time.Millisecond)) || o.After(to.Add(10*time.Millisecond)) {
			t.Errorf("queue --json: oldest %v, want within %v … %v", o, from, to)
		}
		m := regexp.MustCompile(`(?m)^` + dev + `\s+(\d+)\s+\d+\s+(\S+)\s+0$`).FindStringSubmatch(string(text))
		if m == nil || m[1] != fmt.Sprint(queued) {
			t.Fatalf("shadowgw queue commands printed\n%s\nwant a line for %s with %d queued", text, dev, queued)
		}
		d, err := time.ParseDuration(m[2])
		lo, hi := r0.Sub(to).Round(time.Second), r1.Sub(from).Round(time.Second)
		if err != nil || d < lo || d > hi {
			t.Errorf("shadowgw queue commands: OLDEST %q, want %v to %v", m[2], lo, hi)
		}
	}

	from0, to0 := send(0, 1)
	// Let the head age past two seconds (the metric says when), then queue a second.
	deadline := time.Now().Add(30 * time.Second)
	for metricSum(g, `shadowgw_commands_oldest_age_seconds{device="`+dev+`"}`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("oldest age still %v after 30 s", metricSum(g, `shadowgw_commands_oldest_age_seconds`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	from1, to1 := send(1, 2)
	figures(from0, to0, 2)

	// The device takes the first command: the head is now the second one.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := amqp.Dial(ctx, "amqp://"+g.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sess.NewReceiver(ctx, "command/"+dev, &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	m, err := r.Receive(ctx, nil)
	if err != nil || !strings.HasSuffix(string(m.GetData()), "/0") {
		t.Fatalf("device: got %v, %v; want command 0", m, err)
	}
	if err := r.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, g, `shadowgw_commands_queued{device="`+dev+`"}`, 1, 10*time.Second)
	figures(from1, to1, 1)
	conn.Close()
	g.stop()
}
