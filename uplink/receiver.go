package uplink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// The uplink's second user of the connection: a receiver on Config.Commands that
// takes the cloud's commands for devices into the store's device queues
// (cloud → device). A command is accepted upstream only after it was committed;
// one that does not fit (its device's queue or the store full) is released, so the
// cloud keeps it.

// CommandWindow is the link credit the receiver grants upstream: at most this many
// commands are on their way or waiting for their commit. A broker's own default
// (RabbitMQ grants 65536) would pile commands up in memory.
const CommandWindow = 64

// DeviceIDProperty is the application property naming a command's device (Eclipse
// Hono's convention for gateways). Without it, the last segment of a properties.to
// of the form "command/<device-id>" names it.
const DeviceIDProperty = "device_id"

// SupersedeProperty is the application property whose (string) value is a command's
// supersede key: a newer command for the same device with the same key replaces the
// queued older one, so a device that wakes up gets the newest configuration only.
const SupersedeProperty = "supersede_key"

// CommandSink is what the receiver needs from the store; *store.Store implements it.
type CommandSink interface {
	AppendCommandAsync(c *store.Command, done func(error))
	CommandsFull() bool
	WatchCommandRoom() *store.Watch
}

// CommandStats are the receiver's counters.
type CommandStats struct {
	Received uint64 // commands committed and accepted upstream
	Released uint64 // released upstream: no room (the cloud keeps them)
	Rejected uint64 // rejected upstream: no device id, or not storable
	Attached bool   // the receiver is attached now
}

// SetCommands makes the uplink receive commands from Config.Commands into sink. Call
// it before Run; without it (or with Config.Commands empty) nothing is received.
func (u *Uplink) SetCommands(sink CommandSink) { u.cmds = &commandReceiver{u: u, sink: sink} }

// CommandStats returns the receiver's counters.
func (u *Uplink) CommandStats() CommandStats {
	if u.cmds == nil {
		return CommandStats{}
	}
	r := u.cmds
	return CommandStats{Received: r.received.Load(), Released: r.released.Load(),
		Rejected: r.rejected.Load(), Attached: r.attached.Load()}
}

// commandReceiver is the user that receives commands.
type commandReceiver struct {
	u    *Uplink
	sink CommandSink

	received, released, rejected atomic.Uint64
	attached                     atomic.Bool
	pause                        atomic.Bool   // a command was released: wait for room
	owed                         atomic.Uint32 // credit of settled commands not granted again yet
}

// commandResult is a command's store outcome, for the goroutine that settles upstream.
type commandResult struct {
	msg *amqp.Message
	err error
}

// serve receives on one connection until ctx ends (see user).
func (r *commandReceiver) serve(ctx context.Context, c *connection) error {
	addr := r.u.cfg.Commands
	sess, err := c.newSession(ctx)
	if err != nil {
		return fmt.Errorf("commands: begin session: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		sess.Close(cctx)
		cancel()
	}()
	rcv, err := sess.NewReceiver(ctx, addr, &amqp.ReceiverOptions{
		// Manual credit (§2.6.7): the window is granted once and topped up as
		// commands are settled upstream, so no more than CommandWindow are ever
		// in memory.
		Credit:           -1,
		SourceDurability: r.u.durability,
		SettlementMode:   amqp.ReceiverSettleModeFirst.Ptr(),
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		r.u.log.Warn("commands: receiver refused; retrying with the next connection", "address", addr, "err", err)
		<-ctx.Done()
		return nil
	}
	if err := rcv.IssueCredit(CommandWindow); err != nil {
		return fmt.Errorf("commands: grant credit: %w", err)
	}
	r.attached.Store(true)
	defer r.attached.Store(false)
	r.u.log.Info("commands: receiving", "address", addr, "window", CommandWindow)

	room := r.sink.WatchCommandRoom()
	defer room.Stop()
	results := make(chan commandResult, CommandWindow)
	var outstanding sync.WaitGroup
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		r.settle(rcv, results)
	}()
	defer func() {
		outstanding.Wait() // every store completion has been handed over
		close(results)
		<-settled
	}()
	var slots = make(chan struct{}, CommandWindow)
	for {
		// Wait while the store has no room: released commands would come straight back.
		if r.sink.CommandsFull() || r.pausing() {
			// What the receiver holds goes back too, so that the cloud keeps the
			// commands in their order.
			for m := rcv.Prefetched(); m != nil; m = rcv.Prefetched() {
				r.released.Add(1)
				rctx, cancel := context.WithTimeout(ctx, shutdownGrace)
				_ = rcv.ReleaseMessage(rctx, m)
				cancel()
				r.owed.Add(1)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-room.C:
			case <-time.After(5 * time.Second):
			}
			r.pause.Store(false)
			r.topUp(rcv)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			if c.lost(err) {
				return c.lostErr()
			}
			r.u.log.Warn("commands: receiver detached; it attaches again with the next connection", "address", addr, "err", readable(err))
			<-ctx.Done()
			return nil
		}
		cmd, rerr := commandFrom(m, addr)
		if rerr != nil {
			<-slots
			r.rejected.Add(1)
			r.u.log.Warn("commands: command rejected", "err", rerr.Description)
			rejectCtx, cancel := context.WithTimeout(ctx, shutdownGrace)
			_ = rcv.RejectMessage(rejectCtx, m, rerr)
			cancel()
			continue
		}
		outstanding.Add(1)
		r.sink.AppendCommandAsync(cmd, func(err error) {
			results <- commandResult{msg: m, err: err}
			<-slots
			outstanding.Done()
		})
	}
}

// pause is set when a command was released for lack of room.
func (r *commandReceiver) pausing() bool { return r.pause.Load() }

// settle answers the cloud for each committed (or refused) command.
func (r *commandReceiver) settle(rcv *amqp.Receiver, results <-chan commandResult) {
	for res := range results {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		var err error
		switch {
		case res.err == nil:
			if err = rcv.AcceptMessage(ctx, res.msg); err == nil {
				r.received.Add(1)
			}
		case errors.Is(res.err, store.ErrFull):
			// §3.4.4 released: not taken; the cloud keeps it for later.
			r.released.Add(1)
			r.pause.Store(true)
			r.u.log.Debug("commands: no room; released upstream", "err", res.err)
			err = rcv.ReleaseMessage(ctx, res.msg)
		default:
			r.rejected.Add(1)
			err = rcv.RejectMessage(ctx, res.msg, &amqp.Error{Condition: amqp.ErrCondInternalError, Description: res.err.Error()})
		}
		cancel()
		if err != nil {
			r.u.log.Debug("commands: settling upstream failed; the cloud sends the command again", "err", err)
		}
		if r.owed.Add(1) >= CommandWindow/4 || len(results) == 0 {
			if !r.pause.Load() {
				r.topUp(rcv)
			}
		}
	}
}

// topUp grants the credit of the commands settled since the last grant.
func (r *commandReceiver) topUp(rcv *amqp.Receiver) {
	if n := r.owed.Swap(0); n > 0 {
		if err := rcv.IssueCredit(n); err != nil {
			r.u.log.Debug("commands: granting credit failed", "err", err)
		}
	}
}

// commandFrom turns a cloud message into a command for the store, or says why it
// cannot be one. A command without a device id is rejected (§3.4.3) with
// amqp:invalid-field (§2.8.15: an invalid field, here the missing device id, means
// the operation cannot proceed).
func commandFrom(m *amqp.Message, source string) (*store.Command, *amqp.Error) {
	dev := ""
	if v, ok := m.ApplicationProperties[DeviceIDProperty].(string); ok {
		dev = v
	}
	if dev == "" && m.Properties != nil && m.Properties.To != nil {
		if rest, ok := strings.CutPrefix(*m.Properties.To, "command/"); ok {
			dev = rest[strings.LastIndexByte(rest, '/')+1:]
		}
	}
	if dev == "" {
		return nil, &amqp.Error{Condition: amqp.ErrCondInvalidField,
			Description: "a command names its device: application property device_id, or to = command/<device-id>"}
	}
	now := time.Now()
	var exp time.Time
	if m.Header != nil && m.Header.TTL > 0 {
		exp = now.Add(m.Header.TTL)
	}
	if m.Properties != nil && m.Properties.AbsoluteExpiryTime != nil && !m.Properties.AbsoluteExpiryTime.IsZero() {
		if a := *m.Properties.AbsoluteExpiryTime; exp.IsZero() || a.Before(exp) {
			exp = a
		}
	}
	key, _ := m.ApplicationProperties[SupersedeProperty].(string)
	// Delivery annotations are for this hop only (§3.2.2).
	m.DeliveryAnnotations = nil
	p, err := m.MarshalBinary()
	if err != nil {
		return nil, &amqp.Error{Condition: amqp.ErrCondDecodeError, Description: "the command cannot be encoded again: " + err.Error()}
	}
	return &store.Command{Device: dev, Key: key, Address: to(m), Source: source, Received: now, Expires: exp, Payload: p}, nil
}

func to(m *amqp.Message) string {
	if m.Properties != nil && m.Properties.To != nil {
		return *m.Properties.To
	}
	return ""
}

// users returns the users of the connection: the forwarder, the direct routes'
// sender, and the command receiver when configured.
func (u *Uplink) users() []user {
	us := []user{u, u.direct}
	if u.cmds != nil && u.cfg.Commands != "" {
		us = append(us, u.cmds)
	}
	return us
}
