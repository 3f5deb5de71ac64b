package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge/devicetest"
	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// binary is the shadowgw binary built once for the tests in this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shadowgw-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "shadowgw")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building shadowgw: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// count returns the number of lines containing all of words.
func (s *syncBuffer) count(words ...string) int {
	n := 0
	for _, line := range strings.Split(s.String(), "\n") {
		ok := line != ""
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			n++
		}
	}
	return n
}

// gateway is a shadowgw process started by a test.
type gateway struct {
	t      *testing.T
	args   []string
	addr   string
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}

	metrics string // host:port of the metrics server, when the test set one
}

// scrape returns the gateway's metric lines that start with one of prefixes.
func (g *gateway) scrape(prefixes ...string) string {
	resp, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var keep []string
	for _, l := range strings.Split(string(body), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				keep = append(keep, l)
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startGateway runs `shadowgw run` with args and --listen on a free loopback port, and
// waits until it accepts connections. The process is killed when the test ends.
func startGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, args: args, addr: freeAddr(t), log: &syncBuffer{}}
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			if conf, err := os.ReadFile(args[i+1]); err == nil {
				if _, rest, ok := strings.Cut(string(conf), "[metrics]\nlisten = "); ok {
					g.metrics, _, _ = strings.Cut(rest, "\n")
				}
			}
		}
	}
	g.start()
	t.Cleanup(func() {
		if t.Failed() && g.metrics != "" {
			t.Logf("gateway metrics:\n%s", g.scrape("shadowgw_uplink", "shadowgw_store"))
		}
		g.kill()
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log)
		}
	})
	return g
}

func (g *gateway) start() {
	g.t.Helper()
	g.cmd = exec.Command(binary, append([]string{"run", "--listen", g.addr}, g.args...)...)
	g.cmd.Stdout = g.log
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan struct{})
	go func() {
		g.cmd.Wait()
		close(g.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-g.exited:
			g.t.Fatalf("gateway exited at start: %v\n%s", g.cmd.ProcessState, g.log)
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gateway did not listen on %s within 15s:\n%s", g.addr, g.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the gateway with SIGTERM and waits for it.
func (g *gateway) stop() {
	g.t.Helper()
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		g.t.Fatalf("gateway did not stop within 20s after SIGTERM:\n%s", g.log)
	}
	if !g.cmd.ProcessState.Success() {
		g.t.Errorf("gateway exit: %v\n%s", g.cmd.ProcessState, g.log)
	}
}

// kill ends the gateway with SIGKILL, as a power cut would.
func (g *gateway) kill() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	select {
	case <-g.exited:
		return
	default:
	}
	g.cmd.Process.Kill()
	<-g.exited
}

// uplinkArgs returns the flags and a configuration file that forward to b with
// address prefix "/queue/".
func uplinkArgs(t *testing.T, b *cloudtest.Broker, dataDir string, extra string) []string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "uplink.password")
	if err := os.WriteFile(pw, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "shadowgw.conf")
	text := "[uplink]\naddress-prefix = /queue/\nreconnect-min = 100ms\nreconnect-max = 1s\n" +
		"[metrics]\nlisten = " + freeAddr(t) + "\n" + extra
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", conf, "--data", dataDir, "--uplink", b.URL, "--uplink-ca", b.CAFile,
		"--uplink-user", b.User, "--uplink-password-file", pw}
}

// device is a go-amqp device that sends numbered messages and records which ones the
// gateway accepted.
type device struct {
	id       string
	accepted []int
	err      error
}

// body returns the body of a device's message seq: size bytes that encode both.
func body(id string, seq, size int) []byte {
	b := bytes.Repeat([]byte{'.'}, size)
	copy(b, fmt.Sprintf("%s/%d/", id, seq))
	return b
}

// send sends n messages (from seq from on) to address at addr, with up to window
// unsettled at once, and records the accepted ones. It stops at the first error.
func (d *device) send(ctx context.Context, addr, address string, from, n, size, window int) {
	conn, err := amqp.Dial(ctx, "amqp://"+addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), ContainerID: d.id})
	if err != nil {
		d.err = err
		return
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		d.err = err
		return
	}
	snd, err := sess.NewSender(ctx, address, nil)
	if err != nil {
		d.err = err
		return
	}
	type pending struct {
		seq int
		r   amqp.SendReceipt
	}
	receipts := make(chan pending, window)
	waitErr := make(chan error, 1)
	go func() {
		var err error
		for p := range receipts {
			if err != nil {
				continue
			}
			var st amqp.DeliveryState
			st, err = p.r.Wait(ctx)
			if err == nil {
				if _, ok := st.(*amqp.StateAccepted); ok {
					d.accepted = append(d.accepted, p.seq)
				} else {
					err = fmt.Errorf("message %d: outcome %T", p.seq, st)
				}
			}
		}
		waitErr <- err
	}()
	for seq := from; seq < from+n && ctx.Err() == nil; seq++ {
		r, err := snd.SendWithReceipt(ctx, deviceMessage(d.id, seq, size), nil)
		if err != nil {
			d.err = err
			break
		}
		receipts <- pending{seq, r}
	}
	close(receipts)
	if err := <-waitErr; err != nil && d.err == nil {
		d.err = err
	}
}

// deviceMessage returns a device's message seq: its body, and application-properties
// and properties that check verifies.
func deviceMessage(id string, seq, size int) *amqp.Message {
	m := amqp.NewMessage(body(id, seq, size))
	m.ApplicationProperties = map[string]any{"device": id, "seq": int64(seq)}
	m.Properties = &amqp.MessageProperties{ContentType: ptr("application/octet-stream")}
	return m
}

func ptr[T any](v T) *T { return &v }

// key identifies a message by device and sequence number.
type key struct {
	device string
	seq    int64
}

// check verifies a message that crossed the gateway: properties and body as the device
// sent them, and the gateway's source annotation. It returns the message's key.
func check(t *testing.T, m *amqp.Message, size int) (key, error) {
	id, _ := m.ApplicationProperties["device"].(string)
	seq, ok := m.ApplicationProperties["seq"].(int64)
	if id == "" || !ok {
		return key{}, fmt.Errorf("application-properties %v lack device and seq", m.ApplicationProperties)
	}
	k := key{id, seq}
	if strings.HasPrefix(id, "py-") {
		// A Proton Python device (package devicetest): its own body and message-id.
		if size >= 0 && !bytes.Equal(m.GetData(), devicetest.Body(int(seq), size)) {
			return k, fmt.Errorf("%v: body differs", k)
		}
		if m.Properties == nil || m.Properties.MessageID != fmt.Sprintf("%s:%d", id, seq) {
			return k, fmt.Errorf("%v: properties not kept: %+v", k, m.Properties)
		}
	} else {
		if size >= 0 && !bytes.Equal(m.GetData(), body(id, int(seq), size)) {
			return k, fmt.Errorf("%v: body differs: %q", k, m.GetData())
		}
		if m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != "application/octet-stream" {
			return k, fmt.Errorf("%v: properties not kept: %+v", k, m.Properties)
		}
	}
	if src := m.Annotations["x-opt-shadowgw-source"]; src != id {
		return k, fmt.Errorf("%v: source annotation = %v, want %s", k, src, id)
	}
	return k, nil
}
