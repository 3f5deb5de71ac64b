package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/devicetest"
)

// The command side of the interop matrix: each device stack, at its defaults,
// attaches a receiver on command/<its id> (anonymous devices; commandServer allows
// sensor-*) and takes the commands queued for it in the store: all in order, each
// accepted once and deleted, the one it rejects moved to the dead letters with the
// device's condition and description.

// interopCommands is the number of commands per device; interopReject is the one each
// device rejects (counting from 1).
const (
	interopCommands = 100
	interopReject   = 37
)

func TestInteropCommandReceivers(t *testing.T) {
	addr, _, st := commandServer(t)
	host, port := splitAddr(t, addr)

	// queue puts interopCommands commands "DEV/i" for dev into the store and returns
	// the bodies in order.
	queue := func(t *testing.T, dev string) []string {
		var want []string
		for i := 0; i < interopCommands; i++ {
			body := fmt.Sprintf("%s/%d", dev, i)
			queueCommand(t, st, dev, body)
			want = append(want, body)
		}
		return want
	}
	// check verifies the store after dev's device took its commands: nothing left
	// queued, the rejected one a dead letter with the device's reason (when reject).
	check := func(t *testing.T, dev string, deliveredBefore uint64, reject bool) {
		t.Helper()
		accepted := uint64(interopCommands)
		if reject {
			accepted--
		}
		checkFor(t, 10*time.Second, func() bool {
			cs, err := st.ReadCommands(dev, 0, 10)
			return err == nil && len(cs) == 0 && st.CommandStats().Delivered-deliveredBefore == accepted
		})
		if got := st.CommandStats().Delivered - deliveredBefore; got != accepted {
			t.Errorf("%s: %d commands deleted as delivered, want %d", dev, got, accepted)
		}
		dead, err := st.CommandDeadLetters(dev, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !reject {
			if len(dead) != 0 {
				t.Errorf("%s: dead letters %+v, want none", dev, dead)
			}
			return
		}
		if len(dead) != 1 {
			t.Fatalf("%s: %d dead letters, want 1", dev, len(dead))
		}
		var m amqp.Message
		if err := m.UnmarshalBinary(dead[0].Payload); err != nil {
			t.Fatal(err)
		}
		wantBody := fmt.Sprintf("%s/%d", dev, interopReject-1)
		wantReason := fmt.Sprintf("rejected by the device: %s: %s refuses command %d", devicetest.RejectCondition, dev, interopReject-1)
		if string(m.GetData()) != wantBody || !strings.Contains(dead[0].Reason, wantReason) {
			t.Errorf("%s: dead letter %q with reason %q, want %q with %q", dev, m.GetData(), dead[0].Reason, wantBody, wantReason)
		}
	}
	checkReport := func(t *testing.T, r devicetest.Received, want []string) {
		t.Helper()
		if len(r.Errors) > 0 || r.Accepted != interopCommands-1 || r.Rejected != 1 {
			t.Errorf("device report: accepted %d, rejected %d, errors %q; want %d and 1\n%s", r.Accepted, r.Rejected, r.Errors, interopCommands-1, r.Stderr)
		}
		if fmt.Sprint(r.Bodies) != fmt.Sprint(want) {
			t.Errorf("the device got\n%v\nwant, in order, once each\n%v", r.Bodies, want)
		}
	}

	t.Run("proton-c", func(t *testing.T) {
		// Debian's receive.c accepts every message: no rejection here.
		bin := devicetest.ProtonReceive(t)
		dev := "sensor-proton-c"
		want := queue(t, dev)
		before := st.CommandStats().Delivered
		out, err := devicetest.RunProtonSend(t, bin, host, port, "command/"+dev, interopCommands)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != interopCommands+1 || lines[interopCommands] != fmt.Sprintf("%d messages received", interopCommands) {
			t.Fatalf("receive printed:\n%s", out)
		}
		for i, w := range want {
			if !strings.Contains(lines[i], w) || (i < 10 && strings.Contains(lines[i], w+"0")) {
				t.Fatalf("line %d: %q, want command %s", i, lines[i], w)
			}
		}
		check(t, dev, before, false)
	})
	t.Run("proton-python", func(t *testing.T) {
		dev := "sensor-proton-python"
		want := queue(t, dev)
		before := st.CommandStats().Delivered
		r := devicetest.PythonReceiver(t, devicetest.ReceiverOptions{Addr: addr, Source: "command/" + dev,
			Count: interopCommands, Reject: interopReject, Device: dev})
		checkReport(t, r, want)
		check(t, dev, before, true)
	})
	t.Run("go-amqp", func(t *testing.T) {
		dev := "sensor-go-amqp"
		want := queue(t, dev)
		before := st.CommandStats().Delivered
		// go-amqp's defaults: credit 1, topped up as messages are taken.
		_, r, err := commandReceiver(t, addr, amqp.SASLTypeAnonymous(), "command/"+dev, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got devicetest.Received
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := 0; i < interopCommands; i++ {
			m, err := r.Receive(ctx, nil)
			if err != nil {
				t.Fatalf("receive %d: %v", i, err)
			}
			got.Bodies = append(got.Bodies, string(m.GetData()))
			if i == interopReject-1 {
				err = r.RejectMessage(ctx, m, &amqp.Error{Condition: devicetest.RejectCondition,
					Description: fmt.Sprintf("%s refuses command %d", dev, i)})
				got.Rejected++
			} else {
				err = r.AcceptMessage(ctx, m)
				got.Accepted++
			}
			if err != nil {
				t.Fatalf("settle %d: %v", i, err)
			}
		}
		checkReport(t, got, want)
		check(t, dev, before, true)
	})
	t.Run("uamqp", func(t *testing.T) {
		// uAMQP-C puts its whole URL, less the port, in the source address
		// (amqps://127.0.0.1/command/ID); the gateway reads the path of such a URL.
		dev := "sensor-uamqp"
		want := queue(t, dev)
		before := st.CommandStats().Delivered
		r := devicetest.UAMQPReceiver(t, devicetest.ReceiverOptions{Addr: addr, Source: "command/" + dev,
			Count: interopCommands, Reject: interopReject, Device: dev})
		checkReport(t, r, want)
		check(t, dev, before, true)
	})
	t.Run("rhea", func(t *testing.T) {
		dev := "sensor-rhea"
		want := queue(t, dev)
		before := st.CommandStats().Delivered
		r := devicetest.RheaReceiver(t, devicetest.ReceiverOptions{Addr: addr, Source: "command/" + dev,
			Count: interopCommands, Reject: interopReject, Device: dev})
		checkReport(t, r, want)
		check(t, dev, before, true)
	})
	if err := st.Check(); err != nil {
		t.Errorf("store check: %v", err)
	}
}
