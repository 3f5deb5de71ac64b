package edge

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/devicetest"
)

// The device side of the interop matrix: five AMQP 1.0 client stacks, each at its
// default settings, send 300 messages to one gateway; each message must be stored
// once, with its body and application-properties as sent. The cloud side is in
// uplink/interop_test.go.
//
// Defaults that matter here: uAMQP-C asks for rcv-settle-mode second and completes a
// send only on a settled disposition; the gateway answers first (§2.7.3), so it does.
// rhea leaves the settlement modes out of its attach (mixed, first).

// matrixCount is the number of messages of one matrix cell.
const matrixCount = 300

// checkStored checks that the deliveries to address are n messages from device, each
// once, with application-properties {"device": device, "seq": i} and the body
// devicetest.Body(i, size).
func checkStored(t *testing.T, sink *memSink, address, device string, n, size int) {
	t.Helper()
	var mine []*Delivery
	checkFor(t, 10*time.Second, func() bool {
		mine = mine[:0]
		for _, d := range sink.deliveries() {
			if d.Address == address {
				mine = append(mine, d)
			}
		}
		return len(mine) >= n
	})
	seen := make([]int, n)
	for i, d := range mine {
		m := decode(t, i, d)
		seq, ok := m.ApplicationProperties["seq"].(int64)
		if !ok {
			// Stacks differ in the integer type they encode: compare as text.
			fmt.Sscan(fmt.Sprint(m.ApplicationProperties["seq"]), &seq)
		}
		if seq < 0 || int(seq) >= n || m.ApplicationProperties["device"] != device {
			t.Errorf("delivery %d: application-properties %v, want device %q and seq 0..%d", i, m.ApplicationProperties, device, n-1)
			continue
		}
		seen[seq]++
		if !bytes.Equal(m.GetData(), devicetest.Body(int(seq), size)) {
			t.Errorf("message %d: body differs: got %d bytes %x…", seq, len(m.GetData()), m.GetData()[:min(8, len(m.GetData()))])
		}
		if want := fmt.Sprintf("%s:%d", device, seq); m.Properties == nil || fmt.Sprint(m.Properties.MessageID) != want {
			t.Errorf("message %d: properties %+v, want message-id %q", seq, m.Properties, want)
		}
	}
	for seq, k := range seen {
		if k != 1 {
			t.Errorf("message %d stored %d times, want once", seq, k)
		}
	}
}

func TestInteropDevices(t *testing.T) {
	sink := &memSink{}
	addr, _ := startServer(t, Config{AllowAnonymous: true}, sink)
	host, port := splitAddr(t, addr)
	const size = 100

	t.Run("proton-c", func(t *testing.T) {
		// Debian's send.c: no SASL, unsettled; its messages are a map body
		// {"sequence": n}, n from 1, without application-properties.
		bin := devicetest.ProtonSend(t)
		out, err := devicetest.RunProtonSend(t, bin, host, port, "interop/proton-c", matrixCount)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d messages sent and acknowledged", matrixCount); strings.TrimSpace(out) != want {
			t.Errorf("send printed %q, want %q", out, want)
		}
		var mine []*Delivery
		checkFor(t, 10*time.Second, func() bool {
			mine = mine[:0]
			for _, d := range sink.deliveries() {
				if d.Address == "interop/proton-c" {
					mine = append(mine, d)
				}
			}
			return len(mine) >= matrixCount
		})
		seen := map[int64]int{}
		for i, d := range mine {
			m := decode(t, i, d)
			body, ok := m.Value.(map[string]any)
			seq, _ := body["sequence"].(int32)
			if !ok || seq < 1 || seq > matrixCount {
				t.Errorf("delivery %d: body %v, want {sequence: 1..%d}", i, m.Value, matrixCount)
				continue
			}
			if m.Properties == nil || m.Properties.MessageID != uint64(seq) {
				t.Errorf("delivery %d: properties %+v, want message-id ulong %d", i, m.Properties, seq)
			}
			seen[int64(seq)]++
		}
		for seq := int64(1); seq <= matrixCount; seq++ {
			if seen[seq] != 1 {
				t.Errorf("message %d stored %d times, want once", seq, seen[seq])
			}
		}
	})
	t.Run("proton-python", func(t *testing.T) {
		r := devicetest.Python(t, devicetest.PythonOptions{Addr: addr, Address: "interop/proton-python",
			Count: matrixCount, Size: size, SASL: devicetest.Anonymous, Device: "proton-python"})
		if r.Accepted != matrixCount || len(r.Errors) > 0 {
			t.Fatalf("device report %+v: want %d accepted", r, matrixCount)
		}
		checkStored(t, sink, "interop/proton-python", "proton-python", matrixCount, size)
	})
	t.Run("go-amqp", func(t *testing.T) {
		c := dial(t, addr, nil)
		snd := newSender(t, c, "interop/go-amqp", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := range matrixCount {
			m := amqp.NewMessage(devicetest.Body(i, size))
			m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("go-amqp:%d", i)}
			m.ApplicationProperties = map[string]any{"device": "go-amqp", "seq": int64(i)}
			if err := snd.Send(ctx, m, nil); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		checkStored(t, sink, "interop/go-amqp", "go-amqp", matrixCount, size)
	})
	t.Run("uamqp", func(t *testing.T) {
		r := devicetest.UAMQP(t, devicetest.UAMQPOptions{Addr: addr, Address: "interop/uamqp",
			Count: matrixCount, Size: size, Device: "uamqp"})
		if r.Accepted != matrixCount || len(r.Errors) > 0 {
			t.Fatalf("device report %+v: want %d accepted", r, matrixCount)
		}
		// uAMQP-C puts its whole target URL, less the port, in the target address.
		checkStored(t, sink, "amqps://127.0.0.1/interop/uamqp", "uamqp", matrixCount, size)
	})
	t.Run("rhea", func(t *testing.T) {
		r := devicetest.Rhea(t, devicetest.RheaOptions{Addr: addr, Address: "interop/rhea",
			Count: matrixCount, Size: size, Device: "rhea"})
		if r.Accepted != matrixCount || len(r.Errors) > 0 {
			t.Fatalf("device report %+v: want %d accepted", r, matrixCount)
		}
		checkStored(t, sink, "interop/rhea", "rhea", matrixCount, size)
	})
}

// A device that insists on rcv-settle-mode second is told at attach, not left waiting:
// go-amqp, the one stack here that checks the answer, refuses a link whose answered
// mode differs from the one it requested. (Proton, rhea and uAMQP-C take the answer.)
func TestGoAMQPRequestingSecondIsRefusedAtAttach(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true}, &memSink{})
	c := dial(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.NewSender(ctx, "telemetry", &amqp.SenderOptions{RequestedReceiverSettleMode: amqp.ReceiverSettleModeSecond.Ptr()})
	if err == nil || !strings.Contains(err.Error(), `receiver settlement mode "second" requested, received "first"`) {
		t.Fatalf("NewSender asking second: got %v, want go-amqp's refusal of the answer first", err)
	}
	// The connection still serves a sender at the defaults.
	snd := newSender(t, c, "telemetry", nil)
	if err := snd.Send(ctx, amqp.NewMessage([]byte("x")), nil); err != nil {
		t.Fatalf("send after the refused link: %v", err)
	}
}
