package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// Application properties that every message carries, so that the consumer can tell
// which run, device and message it is and when it was sent.
const (
	propRun    = "bench-run"
	propDevice = "bench-device"
	propSeq    = "bench-seq"
	propSent   = "bench-sent" // Unix nanoseconds
)

// runID returns a random name for this run; messages of other runs are ignored.
func runID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// deviceResult is what one simulated device did. Its goroutines own it until sendAll
// returns.
type deviceResult struct {
	sent     int
	accepted []bool // by seq, unsettled only: the gateway accepted it
	refused  int    // any other outcome
	outcomes map[string]int
	acks     []time.Duration // send → accepted, unsettled only
	err      error
}

// sendResult is what all devices did.
type sendResult struct {
	devices    []*deviceResult
	start, end time.Time
}

// expected returns, by device and seq, the messages that must reach the cloud: the
// accepted ones, or every one sent pre-settled.
func (s *sendResult) expected(settled bool) [][]bool {
	exp := make([][]bool, len(s.devices))
	for i, d := range s.devices {
		if settled {
			exp[i] = make([]bool, d.sent)
			for j := range exp[i] {
				exp[i][j] = true
			}
		} else {
			exp[i] = d.accepted
		}
	}
	return exp
}

// deviceSASL returns the devices' SASL mechanism.
func deviceSASL(o options) (amqp.SASLType, error) {
	if o.User == "" {
		return amqp.SASLTypeAnonymous(), nil
	}
	pw, err := readPassword(o.PasswordFile)
	if err != nil {
		return nil, err
	}
	return amqp.SASLTypePlain(o.User, pw), nil
}

// readPassword returns the first line of a password file.
func readPassword(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(pw, "\r"), nil
}

// sendAll runs the devices to completion: each connects, attaches a sender and sends
// its messages, paced to its share of o.Rate.
func sendAll(ctx context.Context, o options, run string) (*sendResult, error) {
	sasl, err := deviceSASL(o)
	if err != nil {
		return nil, err
	}
	res := &sendResult{devices: make([]*deviceResult, o.Devices)}
	perDevice := o.Rate / float64(o.Devices)
	var deadline time.Time
	res.start = time.Now()
	if o.Duration > 0 {
		deadline = res.start.Add(o.Duration)
	}
	var wg sync.WaitGroup
	for i := range res.devices {
		d := &deviceResult{outcomes: map[string]int{}}
		res.devices[i] = d
		wg.Go(func() {
			d.err = d.run(ctx, o, sasl, run, i, perDevice, deadline)
		})
	}
	wg.Wait()
	res.end = time.Now()
	return res, nil
}

// run is one device: one connection, one session, one sending link.
func (d *deviceResult) run(ctx context.Context, o options, sasl amqp.SASLType, run string, id int, rate float64, deadline time.Time) error {
	url, address := "amqp://"+o.Addr, o.Address
	opts := &amqp.ConnOptions{SASLType: sasl, ContainerID: fmt.Sprintf("bench-%s-%d", run, id)}
	var durability amqp.Durability
	if o.Straight {
		// The baseline: straight to the broker, as the gateway's uplink attaches.
		url, address, durability = o.CloudURL, o.CloudAddress, amqp.DurabilityConfiguration
		var err error
		if opts, err = cloudConnOptions(o, opts.ContainerID); err != nil {
			return err
		}
	}
	conn, err := amqp.Dial(ctx, url, opts)
	if err != nil {
		return fmt.Errorf("device %d: %w", id, err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		return fmt.Errorf("device %d: begin: %w", id, err)
	}
	mode := amqp.SenderSettleModeUnsettled
	if o.Settled {
		mode = amqp.SenderSettleModeSettled
	}
	sopts := &amqp.SenderOptions{SettlementMode: &mode, TargetDurability: durability}
	if o.Straight && !o.Settled {
		// As the uplink attaches: no mode requested, so a broker may answer mixed
		// (rhea does); the messages are still sent unsettled.
		sopts.SettlementMode = nil
	}
	snd, err := sess.NewSender(ctx, address, sopts)
	if err != nil {
		return fmt.Errorf("device %d: attach: %w", id, err)
	}
	body := make([]byte, o.Size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}

	type pending struct {
		seq  int
		sent time.Time
		r    amqp.SendReceipt
	}
	receipts := make(chan pending, o.Window)
	waited := make(chan error, 1)
	var acceptedSeqs []int // owned by the waiting goroutine until waited
	if !o.Settled {
		go func() {
			var err error
			for p := range receipts {
				if err != nil {
					continue
				}
				var st amqp.DeliveryState
				st, err = p.r.Wait(ctx)
				if err != nil {
					err = fmt.Errorf("device %d: message %d: %w", id, p.seq, err)
					continue
				}
				if _, ok := st.(*amqp.StateAccepted); ok {
					acceptedSeqs = append(acceptedSeqs, p.seq)
					d.acks = append(d.acks, time.Since(p.sent))
				} else {
					d.refused++
					d.outcomes[fmt.Sprintf("%T", st)]++
				}
			}
			waited <- err
		}()
	}

	start := time.Now()
	var sendErr error
	for seq := 0; o.Messages == 0 || seq < o.Messages; seq++ {
		if rate > 0 {
			if wait := time.Until(start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))); wait > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		now := time.Now()
		m := amqp.NewMessage(body)
		m.Header = &amqp.MessageHeader{Durable: o.Durable, Priority: 4}
		m.ApplicationProperties = map[string]any{propRun: run, propDevice: int64(id), propSeq: int64(seq), propSent: now.UnixNano()}
		if o.Settled {
			if sendErr = snd.Send(ctx, m, nil); sendErr != nil {
				break
			}
			d.sent++
			continue
		}
		r, err := snd.SendWithReceipt(ctx, m, nil)
		if err != nil {
			sendErr = err
			break
		}
		d.sent++
		receipts <- pending{seq, now, r}
	}
	close(receipts)
	if sendErr != nil {
		sendErr = fmt.Errorf("device %d: send: %w", id, sendErr)
	}
	if !o.Settled {
		if err := <-waited; err != nil && sendErr == nil {
			sendErr = err
		}
		d.accepted = make([]bool, d.sent)
		for _, seq := range acceptedSeqs {
			d.accepted[seq] = true
		}
	}
	// Close the link and the session in order so that nothing sent is cut off.
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snd.Close(cctx)
	sess.Close(cctx)
	return sendErr
}
