package mqtttest

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed publisher.py
var publisherPy []byte

// Python is Debian's interpreter, which has python3-paho-mqtt.
const Python = "/usr/bin/python3"

// RequireEnv makes a missing client a failure rather than a skip.
const RequireEnv = "SHADOWGW_REQUIRE_PEERS"

// Need skips (or fails, with RequireEnv=1) t unless the named tools exist: "paho",
// "mosquitto_pub", "mosquitto_sub" or "mosquitto".
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		var err error
		switch tool {
		case "paho":
			err = exec.Command(Python, "-c", "import paho.mqtt.client").Run()
		default:
			_, err = exec.LookPath(tool)
		}
		if err != nil {
			if os.Getenv(RequireEnv) == "1" {
				t.Fatalf("%s not available (%v); scripts/install-test-deps.sh installs it", tool, err)
			}
			t.Skipf("%s not available: %v", tool, err)
		}
	}
}

// Body returns the payload of client id's message seq: size bytes (at least the
// prefix "id/seq/") that encode both, as publisher.py makes them.
func Body(id string, seq, size int) []byte {
	b := []byte(fmt.Sprintf("%s/%d/", id, seq))
	if len(b) < size {
		b = append(b, bytes.Repeat([]byte{'.'}, size-len(b))...)
	}
	return b
}

// Publish describes a run of publisher.py.
type Publish struct {
	Addr     string // host:port of the MQTT server
	ClientID string
	Topic    string
	First    int // sequence number of the first message
	Count    int
	QoS      int
	Version  int // 4 (3.1.1) or 5
	Size     int // payload size, at least the "id/seq/" prefix
	User     string
	Password string
}

// Publisher is a running publisher.py.
type Publisher struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	acked []int
	held  bool   // WINDOW messages waited for their acknowledgement
	end   string // "DONE", "LOST ...", or ""
	lines []string
}

// StartPublisher starts publisher.py with p; it is killed when the test ends.
func StartPublisher(t testing.TB, p Publish) *Publisher {
	t.Helper()
	script := filepath.Join(t.TempDir(), "publisher.py")
	if err := os.WriteFile(script, publisherPy, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(p.Addr, ":")
	args := []string{script, host, port, p.ClientID, p.Topic, strconv.Itoa(p.First), strconv.Itoa(p.Count),
		strconv.Itoa(p.QoS), strconv.Itoa(p.Version), strconv.Itoa(p.Size)}
	if p.User != "" {
		args = append(args, p.User, p.Password)
	}
	cmd := exec.Command(Python, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pub := &Publisher{id: p.ClientID, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(pub.done)
		pub.scan(out)
		cmd.Wait()
		if stderr.Len() > 0 {
			pub.mu.Lock()
			pub.lines = append(pub.lines, "stderr: "+stderr.String())
			pub.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-pub.done
	})
	return pub
}

func (p *Publisher) scan(r io.Reader) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		p.mu.Lock()
		switch {
		case strings.HasPrefix(line, "ACK "), strings.HasPrefix(line, "SENT "):
			_, n, _ := strings.Cut(line, " ")
			if v, err := strconv.Atoi(n); err == nil {
				p.acked = append(p.acked, v)
			}
		case line == "HELD":
			p.held = true
		case line == "DONE" || strings.HasPrefix(line, "LOST"):
			p.end = line
			p.lines = append(p.lines, line)
		default:
			p.lines = append(p.lines, line)
		}
		p.mu.Unlock()
	}
}

// Acked returns the sequence numbers acknowledged so far, in acknowledgement order.
func (p *Publisher) Acked() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.acked...)
}

// Held reports whether the publisher has waited for acknowledgements: it keeps at
// most 1,000 messages unacknowledged (see publisher.py).
func (p *Publisher) Held() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Wait waits up to timeout for the run to end and returns the acknowledged sequence
// numbers and how it ended ("DONE" when every message was acknowledged).
func (p *Publisher) Wait(timeout time.Duration) ([]int, string) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.end
	if end == "" {
		end = "ended without DONE: " + strings.Join(p.lines, "; ")
	}
	return append([]int(nil), p.acked...), end
}

// Kill ends the publisher at once.
func (p *Publisher) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// ID returns the publisher's client identifier.
func (p *Publisher) ID() string { return p.id }

//go:embed subscriber.py
var subscriberPy []byte

// Subscribe describes a run of subscriber.py.
type Subscribe struct {
	Addr          string // host:port of the MQTT server
	ClientID      string
	Version       int    // 4 (3.1.1) or 5
	Clean         bool   // Clean Session (3.1.1), Clean Start (5)
	SessionExpiry int    // MQTT 5 Session Expiry Interval, seconds
	Topic         string // filter to subscribe to; "" subscribes to nothing (a resumed session)
	QoS           int
	Count         int // messages to receive before disconnecting cleanly
	DieAt         int // > 0: exit abruptly while handling this message, before its PUBACK
	Timeout       time.Duration
	User          string
	Password      string
}

// Received is one message a subscriber got.
type Received struct {
	Topic   string         `json:"topic"`
	Payload string         `json:"payload"`
	Dup     bool           `json:"dup"`
	QoS     int            `json:"qos"`
	Props   map[string]any `json:"props"` // MQTT 5 properties by Paho's names
}

// Subscription is the result of a run of subscriber.py.
type Subscription struct {
	SessionPresent bool
	Got            []Received
	End            string // "DONE", "TIMEOUT", "DIED" (DieAt), or what went wrong
}

// RunSubscriber runs subscriber.py with s and returns what it received.
func RunSubscriber(t testing.TB, s Subscribe) Subscription {
	t.Helper()
	script := filepath.Join(t.TempDir(), "subscriber.py")
	if err := os.WriteFile(script, subscriberPy, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.Addr, ":")
	topic := s.Topic
	if topic == "" {
		topic = "-"
	}
	clean := "0"
	if s.Clean {
		clean = "1"
	}
	if s.Timeout == 0 {
		s.Timeout = time.Minute
	}
	args := []string{script, host, port, s.ClientID, strconv.Itoa(s.Version), clean, strconv.Itoa(s.SessionExpiry), topic,
		strconv.Itoa(s.QoS), strconv.Itoa(s.Count), strconv.Itoa(s.DieAt), strconv.FormatFloat(s.Timeout.Seconds(), 'f', 1, 64)}
	if s.User != "" {
		args = append(args, s.User, s.Password)
	}
	cmd := exec.Command(Python, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r Subscription
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "CONNACK "):
			r.SessionPresent = strings.Contains(line, "session_present=1")
		case line == "DONE" || line == "TIMEOUT":
			r.End = line
		case strings.HasPrefix(line, "{"):
			var m Received
			if jerr := json.Unmarshal([]byte(line), &m); jerr != nil {
				t.Fatalf("subscriber.py printed %q: %v", line, jerr)
			}
			r.Got = append(r.Got, m)
		}
	}
	if r.End == "" {
		r.End = fmt.Sprintf("ended: %v: %s", err, stderr.String())
		if s.DieAt > 0 && len(r.Got) == s.DieAt {
			r.End = "DIED"
		}
	}
	return r
}
