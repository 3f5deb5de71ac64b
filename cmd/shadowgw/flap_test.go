package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestFlappingNetwork runs the gateway (the real binary, on this machine) with its
// uplink through a TCP proxy that drops every connection to the cloud every few
// seconds and refuses new ones for a moment, once in the middle of a TLS handshake
// and once in the middle of SASL, while go-amqp devices send at a steady rate. Every
// accepted message must reach RabbitMQ; duplicates are counted, and the gateway's RSS
// is sampled over time and logged. SHADOWGW_FLAP_DURATION sets how long the network
// flaps (default 30s).
func TestFlappingNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("a run of 30s or more with RabbitMQ")
	}
	duration := 30 * time.Second
	if s := os.Getenv("SHADOWGW_FLAP_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SHADOWGW_FLAP_DURATION=%q: %v", s, err)
		}
		duration = d
	}
	b := cloudtest.StartRabbitMQ(t)
	p := startFlapProxy(t, b.Addr)

	dir := t.TempDir()
	pw := filepath.Join(dir, "uplink.password")
	conf := filepath.Join(dir, "shadowgw.conf")
	if err := os.WriteFile(pw, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("[store]\nmin-free = 0\n[uplink]\naddress-prefix = /queue/\n"+
		"reconnect-min = 100ms\nreconnect-max = 1s\n[metrics]\nlisten = "+freeAddr(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--config", conf, "--data", filepath.Join(dir, "data"), "--uplink", "amqps://"+p.addr,
		"--uplink-ca", b.CAFile, "--uplink-user", b.User, "--uplink-password-file", pw)

	const address, size = "flap", 200
	// Devices: 4, each sending one message at a time (at most 100/s), to the end.
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	devs := make([]*pacedDevice, 4)
	var wg sync.WaitGroup
	for i := range devs {
		devs[i] = &pacedDevice{id: fmt.Sprintf("flap-%d", i)}
		wg.Go(func() { devs[i].run(ctx, g.addr, address, size, 10*time.Millisecond) })
	}
	// The network flaps; the gateway's RSS is sampled.
	var rss []string
	flapDone := make(chan struct{})
	go func() {
		defer close(flapDone)
		p.flap(ctx)
	}()
	sample := time.NewTicker(duration / 20)
	for ctx.Err() == nil {
		select {
		case <-sample.C:
			rss = append(rss, fmt.Sprintf("%s:%s", time.Since(p.started).Round(time.Second), vmRSS(g.cmd.Process.Pid)))
		case <-ctx.Done():
		}
	}
	sample.Stop()
	wg.Wait()
	<-flapDone
	p.restore()

	acked := map[key]bool{}
	for _, d := range devs {
		if d.err != nil && !errors.Is(d.err, context.DeadlineExceeded) {
			t.Errorf("device %s: %v", d.id, d.err)
		}
		for _, s := range d.accepted {
			acked[key{d.id, int64(s)}] = true
		}
	}
	got := map[key]int{}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		msgs := b.Drain(t, "/queue/"+address, 5*time.Second)
		for _, m := range msgs {
			k, err := check(t, m, size)
			if err != nil {
				t.Fatal(err)
			}
			got[k]++
		}
		lost := 0
		for k := range acked {
			if got[k] == 0 {
				lost++
			}
		}
		if lost == 0 && len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never reached the cloud", lost, len(acked))
		}
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	flaps, midTLS, midSASL, conns := p.counts()
	if midTLS == 0 || midSASL == 0 {
		t.Errorf("the proxy cut %d connections mid-TLS and %d mid-SASL, want at least one each", midTLS, midSASL)
	}
	if flaps < 2 {
		t.Errorf("only %d flaps", flaps)
	}
	t.Logf("RESULT flapping network for %v: %d flaps (%d connections, cut %d mid-TLS-handshake, %d mid-SASL); "+
		"accepted %d, lost 0, duplicates %d; gateway RSS over time: %s",
		duration, flaps, conns, midTLS, midSASL, len(acked), dups, strings.Join(rss, " "))
}

// vmRSS returns the VmRSS line of /proc/PID/status ("12345 kB").
func vmRSS(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.ReplaceAll(strings.TrimSpace(v), " ", "")
		}
	}
	return "?"
}

// pacedDevice sends one message at a time, waiting for its outcome, at most one per
// interval, until ctx ends; it reconnects after an error.
type pacedDevice struct {
	id       string
	accepted []int
	err      error
}

func (d *pacedDevice) run(ctx context.Context, addr, address string, size int, interval time.Duration) {
	seq := 0
	for ctx.Err() == nil {
		conn, err := amqp.Dial(ctx, "amqp://"+addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: d.id})
		if err != nil {
			d.err = err
			return
		}
		sess, err := conn.NewSession(ctx, nil)
		var snd *amqp.Sender
		if err == nil {
			snd, err = sess.NewSender(ctx, address, nil)
		}
		tick := time.NewTicker(interval)
		for err == nil && ctx.Err() == nil {
			err = snd.Send(ctx, deviceMessage(d.id, seq, size), nil)
			if err == nil {
				d.accepted = append(d.accepted, seq)
				seq++
				select {
				case <-tick.C:
				case <-ctx.Done():
				}
			}
		}
		tick.Stop()
		conn.Close()
		if ctx.Err() == nil {
			d.err = err // the gateway is local and never drops a device: an error is a finding
			return
		}
	}
}

// flapProxy forwards TCP connections to the cloud and cuts them on command.
type flapProxy struct {
	t       *testing.T
	ln      net.Listener
	addr    string
	target  string
	started time.Time

	mu                            sync.Mutex
	down                          bool
	conns                         map[net.Conn]bool
	cutNext                       string // "tls" or "sasl": how the next connection is cut
	flaps, midTLS, midSASL, total int
	wg                            sync.WaitGroup
}

func startFlapProxy(t *testing.T, target string) *flapProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flapProxy{t: t, ln: ln, addr: ln.Addr().String(), target: target, started: time.Now(), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *flapProxy) counts() (flaps, midTLS, midSASL, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flaps, p.midTLS, p.midSASL, p.total
}

// flap drops every connection every 2–5 s and refuses new ones for 0.3–2 s, until
// ctx ends. The second flap arms a cut in the next TLS handshake, the fourth one in
// the next SASL exchange (each re-armed until it happened).
func (p *flapProxy) flap(ctx context.Context) {
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(2000+rand.IntN(3000)) * time.Millisecond):
		}
		p.mu.Lock()
		p.flaps++
		p.down = true
		for c := range p.conns {
			c.Close()
		}
		switch {
		case n >= 2 && p.midTLS == 0:
			p.cutNext = "tls"
		case n >= 4 && p.midSASL == 0:
			p.cutNext = "sasl"
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(300+rand.IntN(1700)) * time.Millisecond):
		}
		p.restore()
	}
}

func (p *flapProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *flapProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.total++
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		cut := p.cutNext
		p.cutNext = ""
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c, cut)
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

// forward copies between the gateway's connection c and the cloud. With cut "tls" it
// closes both when the gateway sends its second TLS record (its answer to the server's
// first flight: the handshake cannot finish); with "sasl" when the gateway sends its
// sasl-init, after the server offered its mechanisms (AMQP 1.0 part 5.3.2). The proxy
// sees only TLS records: after a TLS 1.3 handshake the client's application-data
// records are its Finished, the SASL protocol header, then sasl-init; after TLS 1.2
// (whose client sends handshake records after its hello) the header, then sasl-init.
func (p *flapProxy) forward(c net.Conn, cut string) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, up)
		p.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		io.Copy(c, up)
		c.Close()
		close(done)
	}()
	if cut == "" {
		io.Copy(up, c)
	} else {
		p.forwardRecords(c, up, cut)
	}
	up.Close()
	<-done
}

// forwardRecords copies TLS records from the gateway to the cloud until the one
// where cut applies.
func (p *flapProxy) forwardRecords(c, up net.Conn, cut string) {
	var hdr [5]byte
	records, appData, tls12 := 0, 0, false
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		records++
		typ := hdr[0]
		if typ == 22 && records > 1 {
			tls12 = true
		}
		if typ == 23 {
			appData++
		}
		saslInit := 3
		if tls12 {
			saslInit = 2
		}
		if (cut == "tls" && records == 2) || (cut == "sasl" && typ == 23 && appData == saslInit) {
			p.mu.Lock()
			if cut == "tls" {
				p.midTLS++
			} else {
				p.midSASL++
			}
			p.mu.Unlock()
			return
		}
		if _, err := up.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}
