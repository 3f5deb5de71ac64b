package cloudtest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/devicetest"
)

//go:embed rheabroker.js
var rheaBroker []byte

// RheaBroker is a small AMQP 1.0 broker on the rhea library (Node.js, from npm),
// started by [StartRhea]: TLS with its Certificates and SASL PLAIN as User and
// Password, on a loopback port, everything else at rhea's defaults. Notably it
// answers a sender's attach with snd-settle-mode mixed whatever the sender asked
// (AMQP 1.0 §2.7.3 allows it). It accepts every message and records every delivery,
// with Delivery.Body the data section in hex.
type RheaBroker struct {
	// URL is "amqps://127.0.0.1:PORT".
	URL string
	// Certificates: CAFile signed the server's certificate.
	Certificates
	// User and Password are the only SASL PLAIN login the broker accepts.
	User, Password string

	mu         sync.Mutex
	deliveries []Delivery
	attaches   []RheaAttach
	count      int           // deliveries counted by a sink (see StartRheaSink)
	changed    chan struct{} // closed and replaced at every new line
	cmd        *exec.Cmd
	done       chan struct{}
}

// RheaAttach is a sender's link as the broker answered it.
type RheaAttach struct {
	Address       string `json:"address"`
	SndSettleMode int    `json:"snd_settle_mode"` // 0 unsettled, 1 settled, 2 mixed
	RcvSettleMode int    `json:"rcv_settle_mode"` // 0 first, 1 second
}

// StartRhea starts the broker with new certificates and registers its end with
// t.Cleanup (SIGKILL by PID). It skips the test if node or rhea is missing, or fails
// it when SHADOWGW_REQUIRE_PEERS=1.
func StartRhea(t testing.TB) *RheaBroker {
	t.Helper()
	return startRhea(t, false)
}

// StartRheaSink starts the broker like [StartRhea], but it only counts what it
// accepts: Deliveries stays empty and [RheaBroker.Count] says how many arrived. It is
// for measurements, where a record per delivery would make the broker the bottleneck.
func StartRheaSink(t testing.TB) *RheaBroker {
	t.Helper()
	return startRhea(t, true)
}

func startRhea(t testing.TB, countOnly bool) *RheaBroker {
	t.Helper()
	node, err := exec.LookPath("node")
	var modules string
	if err == nil {
		modules, err = devicetest.NodeModules()
	}
	if err != nil {
		msg := fmt.Sprintf("cloudtest: rhea broker: %v", err)
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("%s (%s=1)", msg, EnvRequirePeers)
		}
		t.Skipf("%s; install it with scripts/install-test-deps.sh", msg)
	}
	dir := t.TempDir()
	s := &RheaBroker{
		Certificates: NewCertificates(t, dir, "client"),
		User:         "gateway",
		Password:     randomString(12),
		changed:      make(chan struct{}),
		done:         make(chan struct{}),
	}
	script := filepath.Join(dir, "rheabroker.js")
	if err := os.WriteFile(script, rheaBroker, 0o600); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.URL = "amqps://" + addr
	cmd := exec.Command(node, script, strconv.Itoa(ports[0]), s.ServerCert, s.ServerKey, s.User)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "RHEA_PASSWORD="+s.Password)
	if countOnly {
		cmd.Env = append(cmd.Env, "RHEA_COUNT_ONLY=1")
	}
	cmd.SysProcAttr = procAttr(syscall.SIGKILL)
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cloudtest: start rhea broker: %v", err)
	}
	s.cmd = cmd
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		once := sync.Once{}
		for sc.Scan() {
			s.record(sc.Bytes(), func() { once.Do(func() { close(ready) }) })
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("cloudtest: rhea broker exited: %s", tail(stderr.Name(), 20))
	case <-time.After(15 * time.Second):
		t.Fatalf("cloudtest: rhea broker not ready within 15s: %s", tail(stderr.Name(), 20))
	}
	return s
}

func (s *RheaBroker) record(line []byte, ready func()) {
	var e struct {
		Event string `json:"event"`
	}
	if json.Unmarshal(line, &e) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Event {
	case "ready":
		ready()
	case "delivery":
		var d Delivery
		if json.Unmarshal(line, &d) == nil {
			s.deliveries = append(s.deliveries, d)
		}
	case "count":
		var c struct {
			N int `json:"n"`
		}
		if json.Unmarshal(line, &c) == nil {
			s.count = c.N
		}
	case "attach":
		var a RheaAttach
		if json.Unmarshal(line, &a) == nil {
			s.attaches = append(s.attaches, a)
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// PID returns the broker's process id, to read its CPU time.
func (s *RheaBroker) PID() int { return s.cmd.Process.Pid }

// WaitCount waits until a broker started by [StartRheaSink] counted at least n
// deliveries (the count is reported every 50 ms), and returns when it saw them; it
// fails the test if that does not happen within timeout.
func (s *RheaBroker) WaitCount(t testing.TB, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		c, changed := s.count, s.changed
		s.mu.Unlock()
		if c >= n {
			return time.Now()
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("cloudtest: rhea broker: %d of %d deliveries within %v", c, n, timeout)
		}
	}
}

// WritePasswordFile writes s.Password, with a trailing newline, to a new file in a
// temporary directory and returns its path.
func (s *RheaBroker) WritePasswordFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	return path
}

// Deliveries returns the deliveries received so far, in order.
func (s *RheaBroker) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Attaches returns the sending links attached so far, as the broker answered them.
func (s *RheaBroker) Attaches() []RheaAttach {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RheaAttach(nil), s.attaches...)
}

// WaitFor waits until cond holds for the deliveries so far, and fails the test with
// their count if it does not within timeout.
func (s *RheaBroker) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Delivery) bool) []Delivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		d, changed := append([]Delivery(nil), s.deliveries...), s.changed
		s.mu.Unlock()
		if cond(d) {
			return d
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("cloudtest: rhea broker: no %s within %v; %d deliveries; attaches: %+v", what, timeout, len(d), s.Attaches())
		}
	}
}
