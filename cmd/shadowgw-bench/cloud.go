package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// consumer receives from the cloud broker and counts the arrivals of this run. Its
// receiving goroutine owns the counts; wait and close read them under mu.
type consumer struct {
	conn   *amqp.Conn
	sess   *amqp.Session
	rcv    *amqp.Receiver
	run    string
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	counts    map[int64][]uint16 // device → seq → arrivals
	latencies []time.Duration    // sent → arrived, first arrivals only
	stale     int                // messages of other runs or without our properties
	last      time.Time          // of the last arrival
	err       error              // why receiving stopped early
}

// arrivals is what the consumer counted.
type arrivals struct {
	counts    map[int64][]uint16
	latencies []time.Duration
	stale     int
	last      time.Time
	err       error
}

// startConsumer connects to the cloud broker over TLS with SASL PLAIN and attaches a
// receiver to o.CloudAddress before the devices start sending.
func startConsumer(ctx context.Context, o options, run string) (*consumer, error) {
	opts, err := cloudConnOptions(o, "shadowgw-bench-"+run)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := amqp.Dial(dctx, o.CloudURL, opts)
	if err != nil {
		return nil, fmt.Errorf("cloud: %w", err)
	}
	sess, err := conn.NewSession(dctx, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("cloud: begin: %w", err)
	}
	// The gateway's uplink attaches its targets with configuration durability, and
	// RabbitMQ refuses a link whose durability differs from the queue's.
	rcv, err := sess.NewReceiver(dctx, o.CloudAddress, &amqp.ReceiverOptions{Credit: 1000, SourceDurability: amqp.DurabilityConfiguration})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("cloud: attach %s: %w", o.CloudAddress, err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	c := &consumer{conn: conn, sess: sess, rcv: rcv, run: run, cancel: rcancel, done: make(chan struct{}), counts: map[int64][]uint16{}}
	go c.receive(rctx)
	return c, nil
}

// cloudConnOptions returns the options of a connection to the cloud broker: TLS with
// --cloud-ca and --cloud-server-name, SASL PLAIN with --cloud-user, else ANONYMOUS.
func cloudConnOptions(o options, containerID string) (*amqp.ConnOptions, error) {
	u, err := url.Parse(o.CloudURL)
	if err != nil || u.Scheme != "amqps" || u.Host == "" {
		return nil, fmt.Errorf("--cloud-url %q: want amqps://HOST:PORT", o.CloudURL)
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if o.CloudServerName != "" {
		tc.ServerName = o.CloudServerName
	}
	if o.CloudCA != "" {
		pem, err := os.ReadFile(o.CloudCA)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.CloudCA)
		}
	}
	opts := &amqp.ConnOptions{TLSConfig: tc, ContainerID: containerID, SASLType: amqp.SASLTypeAnonymous()}
	if o.CloudUser != "" {
		pw, err := readPassword(o.CloudPasswordFile)
		if err != nil {
			return nil, err
		}
		opts.SASLType = amqp.SASLTypePlain(o.CloudUser, pw)
	}
	return opts, nil
}

func (c *consumer) receive(ctx context.Context) {
	defer close(c.done)
	for {
		m, err := c.rcv.Receive(ctx, nil)
		if err != nil {
			if ctx.Err() == nil {
				c.mu.Lock()
				c.err = fmt.Errorf("cloud: receive: %w", err)
				c.mu.Unlock()
			}
			return
		}
		now := time.Now()
		c.count(m, now)
		if err := c.rcv.AcceptMessage(ctx, m); err != nil {
			if ctx.Err() == nil {
				c.mu.Lock()
				c.err = fmt.Errorf("cloud: accept: %w", err)
				c.mu.Unlock()
			}
			return
		}
	}
}

func (c *consumer) count(m *amqp.Message, now time.Time) {
	run, _ := m.ApplicationProperties[propRun].(string)
	dev, ok1 := m.ApplicationProperties[propDevice].(int64)
	seq, ok2 := m.ApplicationProperties[propSeq].(int64)
	sent, ok3 := m.ApplicationProperties[propSent].(int64)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = now
	if run != c.run || !ok1 || !ok2 || !ok3 || seq < 0 || seq > 1<<31 {
		c.stale++
		return
	}
	s := c.counts[dev]
	for int64(len(s)) <= seq {
		s = append(s, 0)
	}
	if s[seq] == 0 {
		c.latencies = append(c.latencies, now.Sub(time.Unix(0, sent)))
	}
	if s[seq] < ^uint16(0) {
		s[seq]++
	}
	c.counts[dev] = s
}

// wait returns once every expected message arrived, or none arrived for quiet, or ctx
// ends.
func (c *consumer) wait(ctx context.Context, expected [][]bool, quiet time.Duration) arrivals {
	want := 0
	for _, d := range expected {
		for _, ok := range d {
			if ok {
				want++
			}
		}
	}
	started := time.Now()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		got := len(c.latencies)
		last := c.last
		failed := c.err != nil
		c.mu.Unlock()
		if last.Before(started) {
			last = started
		}
		if got >= want || failed || time.Since(last) > quiet {
			break
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	// A copy: the receiving goroutine goes on counting until close.
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := make(map[int64][]uint16, len(c.counts))
	for d, s := range c.counts {
		counts[d] = slices.Clone(s)
	}
	return arrivals{counts: counts, latencies: slices.Clone(c.latencies), stale: c.stale, last: c.last, err: c.err}
}

// close stops receiving and ends the session before the connection: RabbitMQ 3.10 drops
// the dispositions still queued for a session when the connection closes, and would
// deliver the messages again.
func (c *consumer) close() error {
	c.cancel()
	<-c.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.sess.Close(ctx)
	return errors.Join(err, c.conn.Close())
}
