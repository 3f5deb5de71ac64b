package cloudtest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed protonserver.py
var protonServer []byte

// EnvPython names the Python 3 interpreter that has the proton module; default
// /usr/bin/python3, where Debian's python3-qpid-proton installs it.
const EnvPython = "SHADOWGW_PYTHON"

// ProtonServer is a small AMQP 1.0 server on Qpid Proton, started by [StartProton]:
// TLS with its Certificates, SASL ANONYMOUS, on a loopback port. It accepts every
// message, unless the message or its address asks for another behaviour (see the
// Outcome constants and the Refuse, Forbid and Starve prefixes). It records every
// delivery.
type ProtonServer struct {
	// URL is "amqps://127.0.0.1:PORT".
	URL string
	// Certificates: CAFile signed the server's certificate.
	Certificates

	mu         sync.Mutex
	deliveries []Delivery
	events     []Event
	changed    chan struct{} // closed and replaced at every new line
	cmd        *exec.Cmd
	stdin      io.WriteCloser // commands to the server, one JSON object a line
	done       chan struct{}
}

// Application properties that choose the server's answer to a message.
const (
	// PropOutcome names the answer for the first PropOutcomeTimes deliveries of a
	// message-id; after that the message is accepted.
	PropOutcome      = "x-outcome"
	PropOutcomeTimes = "x-outcome-times"
)

// Values of PropOutcome.
const (
	OutcomeAccept         = "accept"
	OutcomeReject         = "reject" // rejected with amqp:precondition-failed
	OutcomeRelease        = "release"
	OutcomeModifiedFailed = "modified-failed"        // modified, delivery-failed
	OutcomeUndeliverable  = "modified-undeliverable" // modified, delivery-failed and undeliverable-here
	OutcomeDetachLink     = "detach-link"            // the link is closed with amqp:internal-error
	OutcomeDropConnection = "drop-connection"        // the connection is closed
	OutcomeNone           = "none"                   // never settled
	OutcomeDelayAccept    = "delay-accept"           // accepted 3 s after it arrived
)

// Address prefixes that make the server refuse a sending link.
const (
	// RefusePrefix: the attach is answered with a detach carrying amqp:not-found.
	RefusePrefix = "refuse/"
	// ForbidPrefix: the session is ended with amqp:unauthorized-access, as RabbitMQ
	// 3.10 does when a user may not write.
	ForbidPrefix = "forbidden/"
	// StarvePrefix: the link is attached but gets no link credit (AMQP 1.0 §2.6.7),
	// so nothing can be sent on it, until [ProtonServer.GrantCredit] is called for
	// its address.
	StarvePrefix = "starve/"
	// TricklePrefix: the link gets one credit at attach and one more 300 ms after
	// each delivery, a slow but never stalled link.
	TricklePrefix = "trickle/"
	// RelayPrefix: relay mode. A message sent to such an address is held unsettled
	// and given, in order, to a receiver attached with that source address; the
	// sender's delivery is settled with the receiver's outcome and its fields. What a
	// leaving receiver held unsettled is held again, first in line. Events: "held",
	// "relay-attached", "relay-detached" (Requeued), "relayed" (Outcome, Condition,
	// Description).
	RelayPrefix = "relay/"
	// SmallPrefix: the link has a max-message-size of SmallMaxMessageSize (AMQP 1.0
	// §2.7.3).
	SmallPrefix = "small/"
)

// SmallMaxMessageSize is the max-message-size of a link to a SmallPrefix address.
const (
	SmallMaxMessageSize = 1024
)

// Delivery is one transfer the server received.
type Delivery struct {
	Address       string            `json:"address"`
	ID            string            `json:"id"`             // message-id, as text
	N             int               `json:"n"`              // how many times this message-id arrived so far
	DeliveryCount int               `json:"delivery_count"` // the header's delivery-count
	Outcome       string            `json:"outcome"`        // the answer given
	Conn          int               `json:"conn"`           // connection number, from 1
	Props         map[string]string `json:"props"`
	Annotations   map[string]string `json:"annotations"` // message-annotations, values as text
	Body          string            `json:"body"`        // a data section in hex; another body as text
}

// Event is a line of the server's log other than a delivery: "connection",
// "refused", "forbidden", "starved" (a link attached without credit) or "credit" (a
// GrantCredit took effect).
type Event struct {
	Event   string `json:"event"`
	Address string `json:"address"`
	Conn    int    `json:"conn"`
	// Relay mode (RelayPrefix).
	Held        int    `json:"held"`        // "held": messages waiting for a receiver now
	Requeued    int    `json:"requeued"`    // "relay-detached": unsettled ones held again
	Outcome     string `json:"outcome"`     // "relayed": ACCEPTED, REJECTED, RELEASED, MODIFIED
	Condition   string `json:"condition"`   // "relayed": the rejection's error condition
	Description string `json:"description"` // "relayed": its description
}

// WaitEvent waits until cond holds for the events so far, and fails the test with
// them if it does not within timeout.
func (s *ProtonServer) WaitEvent(t testing.TB, timeout time.Duration, what string, cond func([]Event) bool) []Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		e, changed := append([]Event(nil), s.events...), s.changed
		s.mu.Unlock()
		if cond(e) {
			return e
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("cloudtest: proton server: no %s within %v; events: %+v", what, timeout, e)
		}
	}
}

// Count returns how many of events are of kind (and for address, unless "").
func Count(events []Event, kind, address string) int {
	n := 0
	for _, e := range events {
		if e.Event == kind && (address == "" || e.Address == address) {
			n++
		}
	}
	return n
}

// StartProton starts the server with new certificates and registers its end with
// t.Cleanup (SIGKILL by PID). It skips the test if Python's proton module is missing,
// or fails it when SHADOWGW_REQUIRE_PEERS=1.
func StartProton(t testing.TB) *ProtonServer {
	t.Helper()
	python := os.Getenv(EnvPython)
	if python == "" {
		python = "/usr/bin/python3"
	}
	if err := exec.Command(python, "-c", "import proton").Run(); err != nil {
		msg := fmt.Sprintf("cloudtest: %s cannot import proton (python3-qpid-proton): %v", python, err)
		if os.Getenv(EnvRequirePeers) == "1" {
			t.Fatalf("%s (%s=1)", msg, EnvRequirePeers)
		}
		t.Skipf("%s; install it with scripts/install-test-deps.sh", msg)
	}
	dir := t.TempDir()
	s := &ProtonServer{Certificates: NewCertificates(t, dir, "client"), changed: make(chan struct{}), done: make(chan struct{})}
	script := filepath.Join(dir, "protonserver.py")
	if err := os.WriteFile(script, protonServer, 0o600); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.URL = "amqps://" + addr
	cmd := exec.Command(python, script, strconv.Itoa(ports[0]), s.ServerCert, s.ServerKey)
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
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("cloudtest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cloudtest: start proton server: %v", err)
	}
	s.cmd = cmd
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			s.record(sc.Bytes(), func() { once.Do(func() { close(ready) }) })
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		s.stdin.Close()
	})
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("cloudtest: proton server exited: %s", tail(stderr.Name(), 20))
	case <-time.After(15 * time.Second):
		t.Fatalf("cloudtest: proton server not ready within 15s: %s", tail(stderr.Name(), 20))
	}
	// The listener may trail the ready line by a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cloudtest: proton server does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

func (s *ProtonServer) record(line []byte, ready func()) {
	var e Event
	var d Delivery
	if json.Unmarshal(line, &e) != nil || json.Unmarshal(line, &d) != nil {
		return
	}
	s.mu.Lock()
	switch e.Event {
	case "ready":
		ready()
	case "delivery":
		s.deliveries = append(s.deliveries, d)
	default:
		s.events = append(s.events, e)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Deliveries returns the deliveries received so far, in order.
func (s *ProtonServer) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Events returns the connections and refusals so far, in order.
func (s *ProtonServer) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// WaitFor waits until cond holds for the deliveries so far, and fails the test with
// them if it does not within timeout.
func (s *ProtonServer) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Delivery) bool) []Delivery {
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
			t.Fatalf("cloudtest: proton server: no %s within %v; deliveries: %+v; events: %+v", what, timeout, d, s.Events())
		}
	}
}

// GrantCredit ends the starvation of address, which starts with StarvePrefix: its
// open links get link credit, and so do the links attached to it later. It returns
// once the server has granted it.
func (s *ProtonServer) GrantCredit(t testing.TB, address string) {
	t.Helper()
	granted := func() int {
		n := 0
		for _, e := range s.Events() {
			if e.Event == "credit" && e.Address == address {
				n++
			}
		}
		return n
	}
	before := granted()
	line, _ := json.Marshal(map[string]string{"cmd": "credit", "address": address})
	if _, err := s.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("cloudtest: proton server: grant credit to %s: %v", address, err)
	}
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if granted() > before {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("cloudtest: proton server: credit for %s not granted within 10s; events: %+v", address, s.Events())
		}
	}
}
