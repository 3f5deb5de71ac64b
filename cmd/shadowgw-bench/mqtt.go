package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// mqttOptions are the command line of `shadowgw-bench mqtt`.
type mqttOptions struct {
	Addr     string        `json:"addr"`
	Clients  int           `json:"clients"`
	Messages int           `json:"messages_per_client,omitempty"`
	Duration time.Duration `json:"-"`
	Size     int           `json:"size"`
	QoS      int           `json:"qos"`
	Version  int           `json:"version"`
	Inflight int           `json:"inflight"`
	Topic    string        `json:"topic"`
	PID      int           `json:"-"`
	Label    string        `json:"label,omitempty"`
	JSON     bool          `json:"-"`
}

// mqttReport is the result of one MQTT measurement.
type mqttReport struct {
	Options    mqttOptions `json:"options"`
	Acked      int         `json:"acked"`
	Seconds    float64     `json:"seconds"`
	Rate       float64     `json:"rate"`
	P50        float64     `json:"ack_latency_p50_ms"`
	P99        float64     `json:"ack_latency_p99_ms"`
	CPUSeconds float64     `json:"server_cpu_seconds,omitempty"`
	CPUPerMsg  float64     `json:"server_cpu_us_per_message,omitempty"`
}

// mqttMain runs `shadowgw-bench mqtt`: clients publish to an MQTT server (the gateway's
// [mqtt] listener, or any broker) with up to --inflight unacknowledged QoS 1 or 2
// messages each, and the rate, the acknowledgement latency (PUBLISH written to PUBACK or
// PUBREC read) and the server's CPU time (--pid, from /proc) are reported.
func mqttMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o mqttOptions
	fs := flag.NewFlagSet("shadowgw-bench mqtt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:1883", "the MQTT server, `HOST:PORT`")
	fs.IntVar(&o.Clients, "clients", 1, "clients, one connection each")
	fs.IntVar(&o.Messages, "messages", 2000, "messages per client (0 with --duration: no limit)")
	fs.DurationVar(&o.Duration, "duration", 0, "publish for `DURATION` instead of a fixed count")
	fs.IntVar(&o.Size, "size", 100, "payload size in bytes")
	fs.IntVar(&o.QoS, "qos", 1, "QoS 1 or 2")
	fs.IntVar(&o.Version, "version", 4, "protocol level: 4 (3.1.1) or 5")
	fs.IntVar(&o.Inflight, "inflight", 20, "unacknowledged messages per client")
	fs.StringVar(&o.Topic, "topic", "bench", "topic")
	fs.IntVar(&o.PID, "pid", 0, "process ID of the server, for its CPU time")
	fs.StringVar(&o.Label, "label", "", "name of the server in the report")
	fs.BoolVar(&o.JSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.QoS < 1 || o.QoS > 2 || o.Clients < 1 || o.Inflight < 1 || (o.Version != 4 && o.Version != 5) {
		fmt.Fprintln(stderr, "shadowgw-bench mqtt: want --qos 1 or 2, --clients and --inflight at least 1, --version 4 or 5")
		return 2
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	before := readProc(o.PID)
	start := time.Now()
	lat := make([][]time.Duration, o.Clients)
	errs := make([]error, o.Clients)
	var wg sync.WaitGroup
	for i := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i], errs[i] = mqttClient(ctx, o, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano()%1e6, i))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := readProc(o.PID)
	var all []time.Duration
	for i, l := range lat {
		all = append(all, l...)
		if errs[i] != nil && !errors.Is(errs[i], context.DeadlineExceeded) {
			fmt.Fprintf(stderr, "shadowgw-bench mqtt: client %d: %v\n", i, errs[i])
			return 1
		}
	}
	slices.Sort(all)
	r := mqttReport{Options: o, Acked: len(all), Seconds: elapsed.Seconds(), Rate: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		r.P50 = float64(all[len(all)/2]) / 1e6
		r.P99 = float64(all[len(all)*99/100]) / 1e6
	}
	if before.ok && after.ok && len(all) > 0 {
		r.CPUSeconds = (after.cpu - before.cpu).Seconds()
		r.CPUPerMsg = r.CPUSeconds / float64(len(all)) * 1e6
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return 0
	}
	fmt.Fprintf(stdout, "%-10s clients=%-3d qos=%d v=%d inflight=%d size=%d: %d acked in %.2fs = %.0f msg/s, ack p50 %.2f ms p99 %.2f ms, server CPU %.2fs = %.1f µs/msg\n",
		o.Label, o.Clients, o.QoS, o.Version, o.Inflight, o.Size, r.Acked, r.Seconds, r.Rate, r.P50, r.P99, r.CPUSeconds, r.CPUPerMsg)
	return 0
}

// mqttClient publishes as one client and returns the acknowledgement latencies.
func mqttClient(ctx context.Context, o mqttOptions, id string) ([]time.Duration, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	version := byte(o.Version)
	br := bufio.NewReader(nc)
	bw := bufio.NewWriter(nc)
	bw.Write((&packet.Connect{ProtocolName: "MQTT", Version: version, CleanStart: true, KeepAlive: 60, ClientID: id}).Append(nil, version))
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	h, body, err := packet.Read(br, 0)
	if err != nil {
		return nil, fmt.Errorf("connack: %w", err)
	}
	if p, err := packet.Decode(h, body, version); err != nil || p.(*packet.Connack).Code != 0 {
		return nil, fmt.Errorf("connack: %v %v", p, err)
	}

	// The reader records when each acknowledgement arrives; the writer keeps
	// o.Inflight messages unacknowledged.
	sent := make([]time.Time, 65536)
	var lat []time.Duration
	slots := make(chan struct{}, o.Inflight)
	for range o.Inflight {
		slots <- struct{}{}
	}
	readErr := make(chan error, 1)
	readerDone := make(chan struct{})
	var mu sync.Mutex // guards sent, lat and bw between writer and reader
	finish := func(err error) ([]time.Duration, error) {
		if ctx.Err() != nil {
			err = ctx.Err() // the deadline cut a read or write short
		}
		nc.Close()
		<-readerDone
		return lat, err
	}
	go func() {
		defer close(readerDone)
		for {
			h, body, err := packet.Read(br, 0)
			if err != nil {
				readErr <- err
				return
			}
			p, err := packet.Decode(h, body, version)
			if err != nil {
				readErr <- err
				return
			}
			a, ok := p.(*packet.Ack)
			if !ok {
				continue
			}
			switch a.Kind {
			case packet.PUBACK, packet.PUBREC:
				mu.Lock()
				lat = append(lat, time.Since(sent[a.ID]))
				mu.Unlock()
				if a.Kind == packet.PUBREC {
					mu.Lock()
					bw.Write((&packet.Ack{Kind: packet.PUBREL, ID: a.ID}).Append(nil, version))
					bw.Flush()
					mu.Unlock()
					continue
				}
				slots <- struct{}{}
			case packet.PUBCOMP:
				slots <- struct{}{}
			}
		}
	}()
	payload := make([]byte, o.Size)
	var id16 uint16
	n := 0
	// slot waits for a free slot in the window: nil, or why the run ends.
	slot := func() error {
		select {
		case <-slots:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		}
	}
	for o.Messages == 0 || n < o.Messages {
		if err := slot(); err != nil {
			return finish(err)
		}
		id16++
		if id16 == 0 {
			id16 = 1
		}
		mu.Lock()
		sent[id16] = time.Now()
		bw.Write((&packet.Publish{QoS: byte(o.QoS), ID: id16, Topic: o.Topic, Payload: payload}).Append(nil, version))
		err := bw.Flush()
		mu.Unlock()
		if err != nil {
			return finish(err)
		}
		n++
	}
	for range o.Inflight { // wait for the last acknowledgements
		if err := slot(); err != nil {
			return finish(err)
		}
	}
	mu.Lock()
	bw.Write((&packet.Disconnect{}).Append(nil, version))
	bw.Flush()
	mu.Unlock()
	return finish(nil)
}
