package mqtt

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
	"github.com/shadowgw/shadowgw/store"
)

// TestMeasureCommands measures the delivery of commands to MQTT subscribers for the
// closing note of issue 17 (run with SHADOWGW_MEASURE=1; it asserts nothing about
// speed), in the shape of edge's TestMeasureCommands for AMQP devices: store →
// subscriber throughput with 1 and 16 clients (16,000 commands of 105 B, fsync on,
// QoS 1, a PUBACK each), and the latency of an online subscriber.
func TestMeasureCommands(t *testing.T) {
	if os.Getenv("SHADOWGW_MEASURE") == "" {
		t.Skip("set SHADOWGW_MEASURE=1 to measure")
	}
	big := store.CommandOptions{MaxPerDevice: 1 << 20, MaxBytesPerDevice: 1 << 30, MaxMessages: 1 << 20, MaxBytes: 1 << 30}
	body := append([]byte{0x00, 0x53, 0x75, 0xa0, 100}, make([]byte, 100)...) // one data section
	for _, clients := range []int{1, 16} {
		st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{Commands: big})
		if err != nil {
			t.Fatal(err)
		}
		per := 16000 / clients
		for d := range clients {
			var wg sync.WaitGroup
			for range per {
				wg.Add(1)
				st.AppendCommandAsync(&store.Command{Device: fmt.Sprint("m", d), Payload: body}, func(err error) {
					if err != nil {
						t.Error(err)
					}
					wg.Done()
				})
			}
			wg.Wait()
		}
		addr := serve(t, New(Config{AllowAnonymous: true}, storeSink{st}, storeCommands{st}, nil))
		start := time.Now()
		var wg sync.WaitGroup
		for d := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := measureSubscriber(addr, fmt.Sprint("m", d), per, nil); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		deadline := time.Now().Add(30 * time.Second)
		for st.CommandStats().Messages != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("store → MQTT subscriber, %d client(s), %d commands of 105 B, QoS 1, fsync on: %.0f commands/s (%v; last delete committed %v later)",
			clients, clients*per, float64(clients*per)/el.Seconds(), el.Round(time.Millisecond), time.Since(start.Add(el)).Round(time.Millisecond))
		st.Close()
	}

	// Latency of an online subscriber: from the append call to the arrival.
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	addr := serve(t, New(Config{AllowAnonymous: true}, storeSink{st}, storeCommands{st}, nil))
	const n = 1000
	next := make(chan struct{})
	var lat []time.Duration
	var starts [n]time.Time
	errc := make(chan error, 1)
	go func() {
		i := 0
		errc <- measureSubscriber(addr, "live", n, func() {
			lat = append(lat, time.Since(starts[i]))
			i++
			next <- struct{}{}
		})
	}()
	for i := range n {
		starts[i] = time.Now()
		st.AppendCommandAsync(&store.Command{Device: "live", Payload: body}, func(error) {})
		select {
		case <-next:
		case err := <-errc:
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	slices.Sort(lat)
	t.Logf("online MQTT subscriber latency (append → arrival, fsync on), %d commands: p50 %v, p99 %v, max %v",
		n, lat[n/2].Round(time.Microsecond), lat[n*99/100].Round(time.Microsecond), lat[n-1].Round(time.Microsecond))
}

// measureSubscriber connects as an MQTT 5 client, subscribes to the commands of id with
// QoS 1 and acknowledges n of them (calling got for each, when not nil).
func measureSubscriber(addr, id string, n int, got func()) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	br, bw := bufio.NewReaderSize(nc, 64<<10), bufio.NewWriterSize(nc, 16<<10)
	bw.Write((&packet.Connect{ProtocolName: "MQTT", Version: packet.V5, CleanStart: true, KeepAlive: 60, ClientID: id}).Append(nil, packet.V5))
	bw.Write((&packet.Subscribe{ID: 1, Subs: []packet.Subscription{{Filter: "command/" + id + "/#", QoS: 1}}}).Append(nil, packet.V5))
	if err := bw.Flush(); err != nil {
		return err
	}
	var ack []byte
	for i := 0; i < n; {
		h, body, err := packet.Read(br, 0)
		if err != nil {
			return fmt.Errorf("%s after %d commands: %w", id, i, err)
		}
		if h.Type != packet.PUBLISH {
			continue
		}
		p, err := packet.Decode(h, body, packet.V5)
		if err != nil {
			return err
		}
		i++
		if got != nil {
			got()
		}
		ack = (&packet.Ack{Kind: packet.PUBACK, ID: p.(*packet.Publish).ID}).Append(ack[:0], packet.V5)
		bw.Write(ack)
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
