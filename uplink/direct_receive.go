package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/hw/backoff"
	"github.com/shadowgw/shadowgw/store"
)

// DirectCommands is the cloud → device half of direct routes: while a device whose
// commands are direct has its command receiver attached at the gateway (and the uplink
// is up), one receiver link on the uplink's connection takes that device's messages
// from the cloud. Nothing is stored: each message is handed to the device unsettled,
// in order, and the device's outcome is settled upstream (AMQP 1.0 §3.4), so the cloud
// keeps what the device did not take. The upstream link credit mirrors the device's
// (§2.6.7, manual credit): with no device attached, or a device that grants no credit,
// nothing is taken from the cloud.
//
// The links run on the connection of the [Direct] user (direct.go), which serves both
// directions of the direct routes. Its methods are safe for concurrent use.
type DirectCommands struct {
	u        *Uplink
	log      *slog.Logger
	template AddressTemplate

	mu    sync.Mutex
	links map[*CommandLink]struct{}
	added chan struct{} // capacity 1: a link was opened, serve starts it

	received, settled, released atomic.Uint64
	attached                    atomic.Int64
}

// DefaultDirectCommandSource is the cloud source address of a device's direct
// commands unless configured: Eclipse Hono's address of a device's commands.
const DefaultDirectCommandSource = "command/{device}"

// DirectCommandRoute is the route name the source template's {route} stands for.
const DirectCommandRoute = "command"

// SetDirectCommands makes the uplink open direct command links, with the cloud source
// address made from source ("" for DefaultDirectCommandSource; the variables of
// AddressTemplate: {device} the device id, {address} "command/<device-id>",
// {route} DirectCommandRoute). Call it before Run.
func (u *Uplink) SetDirectCommands(source string) error {
	if source == "" {
		source = DefaultDirectCommandSource
	}
	t, err := ParseAddressTemplate(source)
	if err != nil {
		return fmt.Errorf("uplink: direct command source %q: %w", source, err)
	}
	u.direct.cmds = &DirectCommands{u: u, log: u.log.With("part", "direct-commands"), template: t,
		links: make(map[*CommandLink]struct{}), added: make(chan struct{}, 1)}
	return nil
}

// DirectCommands returns the uplink's direct command links, nil unless
// SetDirectCommands was called.
func (u *Uplink) DirectCommands() *DirectCommands { return u.direct.cmds }

// DirectCommandStats are the counters of the direct command links, upstream.
type DirectCommandStats struct {
	Links    int    // device links open
	Attached int64  // of them, those with their receiver attached upstream now
	Received uint64 // messages taken from the cloud
	Settled  uint64 // the devices' outcomes settled upstream
	Released uint64 // released upstream because the device went away
}

// Stats returns the counters.
func (dc *DirectCommands) Stats() DirectCommandStats {
	dc.mu.Lock()
	n := len(dc.links)
	dc.mu.Unlock()
	return DirectCommandStats{Links: n, Attached: dc.attached.Load(), Received: dc.received.Load(),
		Settled: dc.settled.Load(), Released: dc.released.Load()}
}

// Source returns the cloud source address of device's direct commands.
func (dc *DirectCommands) Source(device string) string {
	return dc.template.Expand(&store.Message{Address: "command/" + device, Source: device, Route: DirectCommandRoute})
}

// Open opens a direct command link for device: its receiver attaches upstream as soon
// as the uplink is connected, and again on every new connection, until Close. wake is
// called, without blocking, whenever Read may return more.
func (dc *DirectCommands) Open(device string, wake func()) *CommandLink {
	l := &CommandLink{dc: dc, device: device, source: dc.Source(device), wake: wake, kick: make(chan struct{}, 1)}
	dc.mu.Lock()
	dc.links[l] = struct{}{}
	dc.mu.Unlock()
	select {
	case dc.added <- struct{}{}:
	default:
	}
	return l
}

// serve runs the open links on c until the connection goes or ctx ends; called by
// Direct.serve. It returns after every link's goroutine ended.
func (dc *DirectCommands) serve(ctx context.Context, c *connection) {
	var wg sync.WaitGroup
	defer wg.Wait()
	started := make(map[*CommandLink]bool)
	for {
		dc.mu.Lock()
		var todo []*CommandLink
		for l := range dc.links {
			if !started[l] {
				started[l] = true
				todo = append(todo, l)
			}
		}
		for l := range started {
			if _, ok := dc.links[l]; !ok {
				delete(started, l) // closed: its goroutine has ended or is ending
			}
		}
		dc.mu.Unlock()
		for _, l := range todo {
			wg.Go(func() { l.run(ctx, c) })
		}
		select {
		case <-ctx.Done():
			return
		case <-c.done():
			return
		case <-dc.added:
		}
	}
}

// CommandLink is one device's direct command link: the messages received upstream
// and not yet settled by the device, and the device's credit.
type CommandLink struct {
	dc     *DirectCommands
	device string
	source string
	wake   func()
	kick   chan struct{} // capacity 1: credit, a settlement or Close is waiting

	mu      sync.Mutex
	held    []heldCommand // received, not yet settled by the device, in order
	nextSeq uint64        // the last seq given
	got     uint64        // messages received on rcv
	credit  uint32        // the device's link credit, after the messages up to sent
	sent    uint64        // the device has been sent every message up to this seq
	closed  bool
	settles []commandSettle // outcomes to settle upstream
	rcv     *amqp.Receiver  // the receiver attached now; nil when none
}

// heldCommand is a message received upstream on rcv.
type heldCommand struct {
	seq     uint64
	payload []byte
	msg     *amqp.Message
	rcv     *amqp.Receiver
}

// commandSettle is a device outcome waiting to be settled upstream.
type commandSettle struct {
	h     heldCommand
	state amqp.DeliveryState
}

// Read returns up to max held messages with a seq above after, in order.
func (l *CommandLink) Read(after uint64, max int) []store.Command {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.Command
	for _, h := range l.held {
		if h.seq > after {
			out = append(out, store.Command{Seq: h.seq, Payload: h.payload})
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// Credit records the device's link credit after the messages up to sent; the upstream
// credit follows it.
func (l *CommandLink) Credit(credit uint32, sent uint64) {
	l.mu.Lock()
	changed := l.credit != credit || l.sent != sent
	l.credit, l.sent = credit, sent
	l.mu.Unlock()
	if changed {
		l.poke()
	}
}

// Settle settles the message seq upstream with state, the device's outcome.
func (l *CommandLink) Settle(seq uint64, state amqp.DeliveryState) {
	l.mu.Lock()
	for i, h := range l.held {
		if h.seq == seq {
			l.held = append(l.held[:i:i], l.held[i+1:]...)
			l.settles = append(l.settles, commandSettle{h: h, state: state})
			break
		}
	}
	l.mu.Unlock()
	l.poke()
}

// Close ends the link: the messages the device has not settled are released upstream
// and the receiver detached.
func (l *CommandLink) Close() {
	l.mu.Lock()
	l.closed = true
	idle := l.rcv == nil
	var orphans []heldCommand
	if idle {
		orphans, l.held = l.held, nil
	}
	l.mu.Unlock()
	if idle {
		// No receiver now: what was held belongs to a connection that is gone (the
		// cloud has it back), or the link never attached.
		l.dc.release(l, orphans)
	}
	l.poke()
}

func (l *CommandLink) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// release forgets l (closed) and counts what it held.
func (dc *DirectCommands) release(l *CommandLink, held []heldCommand) {
	dc.released.Add(uint64(len(held)))
	dc.mu.Lock()
	delete(dc.links, l)
	dc.mu.Unlock()
}

// run attaches l's receiver on c and serves it until l closes, the connection goes or
// ctx ends; a refused or lost link attaches again after a backoff.
func (l *CommandLink) run(ctx context.Context, c *connection) {
	dc := l.dc
	cfg := &dc.u.cfg
	bo := backoff.Backoff{Min: cfg.BackoffMin, Max: cfg.BackoffMax, Rand: dc.u.clk.rand}
	for {
		if l.isClosed() {
			l.closeIdle()
			return
		}
		err := l.attachAndServe(ctx, c)
		if err == nil || ctx.Err() != nil {
			return
		}
		delay := bo.Next()
		dc.log.Warn("direct commands: upstream receiver failed; the device gets nothing until it is back", "device", l.device, "source", l.source, "err", readable(err), "retry_in", delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-c.done():
			return
		case <-l.kick:
			l.poke() // seen again after the delay
			select {
			case <-ctx.Done():
				return
			case <-c.done():
				return
			case <-dc.u.clk.After(delay):
			}
		case <-dc.u.clk.After(delay):
		}
	}
}

func (l *CommandLink) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// closeIdle finishes a closed link that has no receiver.
func (l *CommandLink) closeIdle() {
	l.mu.Lock()
	held := l.held
	l.held = nil
	l.mu.Unlock()
	l.dc.release(l, held)
}

// attachAndServe attaches the receiver and serves it; nil when l closed (or the
// connection went), an error when the link failed on a live connection.
func (l *CommandLink) attachAndServe(ctx context.Context, c *connection) error {
	dc := l.dc
	sess, err := c.newSession(ctx)
	if err != nil {
		if c.lost(err) {
			return nil
		}
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		sess.Close(cctx)
		cancel()
	}()
	rcv, err := sess.NewReceiver(ctx, l.source, &amqp.ReceiverOptions{
		// Manual credit (§2.6.7): the device's credit is granted upstream, no more.
		Credit:           -1,
		SourceDurability: dc.u.durability,
		SettlementMode:   amqp.ReceiverSettleModeFirst.Ptr(),
	})
	if err != nil {
		if ctx.Err() != nil || c.lost(err) {
			return nil
		}
		return err
	}
	dc.attached.Add(1)
	defer dc.attached.Add(-1)
	dc.log.Debug("direct commands: receiving", "device", l.device, "source", l.source)
	l.mu.Lock()
	l.rcv, l.got = rcv, 0
	l.mu.Unlock()

	rctx, stop := context.WithCancel(ctx)
	recvErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { recvErr <- l.receive(rctx, rcv) })
	err = l.serveReceiver(ctx, c, rcv, recvErr)
	stop()
	wg.Wait()
	if !isDone(c.done()) && l.isClosed() {
		l.letGo(ctx, rcv)
	}
	// The link ends with its session (the deferred Close): RabbitMQ 3.10 does not
	// answer a receiving link's detach, and would keep delivering to the link until
	// the session ends, whose end it handles, giving back what was not settled.

	l.mu.Lock()
	l.rcv = nil
	closed := l.closed
	// What the device has not been sent is the cloud's again (the link goes); what it
	// was sent and settles later cannot be settled upstream any more.
	kept := l.held[:0]
	for _, h := range l.held {
		if h.seq <= l.sent && !closed {
			kept = append(kept, h)
		}
	}
	l.held = kept
	l.mu.Unlock()
	if closed {
		dc.release(l, nil)
		return nil
	}
	if err == nil && (ctx.Err() != nil || isDone(c.done())) {
		return nil
	}
	return err
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// receive takes messages from the cloud into held until ctx ends or the link fails.
func (l *CommandLink) receive(ctx context.Context, rcv *amqp.Receiver) error {
	for {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			return err
		}
		l.dc.received.Add(1)
		m.DeliveryAnnotations = nil // for this hop only (§3.2.2)
		p, err := m.MarshalBinary()
		if err != nil {
			rc, cancel := context.WithTimeout(ctx, shutdownGrace)
			_ = rcv.RejectMessage(rc, m, &amqp.Error{Condition: amqp.ErrCondDecodeError, Description: "the message cannot be encoded again: " + err.Error()})
			cancel()
			continue
		}
		l.mu.Lock()
		l.nextSeq++
		l.got++
		l.held = append(l.held, heldCommand{seq: l.nextSeq, payload: p, msg: m, rcv: rcv})
		l.mu.Unlock()
		l.wake()
	}
}

// serveReceiver grants credit and settles outcomes until l closes (then it releases
// what is held and returns nil), the receiving fails, or the connection goes.
func (l *CommandLink) serveReceiver(ctx context.Context, c *connection, rcv *amqp.Receiver, recvErr <-chan error) error {
	var issued uint64 // credit granted since attach; received messages used it
	for {
		l.mu.Lock()
		settles := l.settles
		l.settles = nil
		closed := l.closed
		unsent := 0
		for _, h := range l.held {
			if h.rcv == rcv && h.seq > l.sent {
				unsent++
			}
		}
		got := l.got
		credit := l.credit
		l.mu.Unlock()
		for _, s := range settles {
			l.settleUpstream(ctx, rcv, s)
		}
		if closed {
			return nil // attachAndServe takes the credit back and releases what is held
		}
		// §2.6.7: what the device may still take, less what is held for it, is what
		// the cloud may send; credit once granted is not taken back.
		want := int64(credit) - int64(unsent)
		outstanding := int64(issued) - int64(got)
		if want > outstanding {
			n := uint32(want - outstanding)
			if err := rcv.IssueCredit(n); err != nil {
				return err
			}
			issued += uint64(n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.done():
			return nil
		case err := <-recvErr:
			if ctx.Err() != nil || c.lost(err) {
				return nil
			}
			return err
		case <-l.kick:
		}
	}
}

// settleUpstream gives the cloud the device's outcome of a message received on the
// receiver attached now; one received on an earlier receiver (a connection since lost)
// is the cloud's again already.
func (l *CommandLink) settleUpstream(ctx context.Context, rcv *amqp.Receiver, s commandSettle) {
	if s.h.rcv != rcv {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	var err error
	switch st := s.state.(type) {
	case *amqp.StateAccepted:
		err = rcv.AcceptMessage(sctx, s.h.msg)
	case *amqp.StateRejected:
		err = rcv.RejectMessage(sctx, s.h.msg, st.Error)
	case *amqp.StateModified:
		err = rcv.ModifyMessage(sctx, s.h.msg, &amqp.ModifyMessageOptions{DeliveryFailed: st.DeliveryFailed,
			UndeliverableHere: st.UndeliverableHere, Annotations: st.MessageAnnotations})
	default:
		err = rcv.ReleaseMessage(sctx, s.h.msg)
	}
	if err != nil {
		l.dc.log.Debug("direct commands: settling upstream failed; the cloud sends the message again", "device", l.device, "err", err)
		return
	}
	l.dc.settled.Add(1)
}

// letGo releases what a closed link holds or has received meanwhile (§3.4.4), for
// the device's next link. (No drain first: RabbitMQ 3.10 dropped the whole
// connection after a drain here.)
func (l *CommandLink) letGo(ctx context.Context, rcv *amqp.Receiver) {
	l.releaseAll(ctx, rcv)
	n := 0
	for m := rcv.Prefetched(); m != nil; m = rcv.Prefetched() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		if rcv.ReleaseMessage(rctx, m) == nil {
			n++
		}
		cancel()
	}
	l.dc.received.Add(uint64(n))
	l.dc.released.Add(uint64(n))
}

// releaseAll releases upstream what l holds from rcv (§3.4.4: the cloud may send it
// again, to the device's next link).
func (l *CommandLink) releaseAll(ctx context.Context, rcv *amqp.Receiver) {
	l.mu.Lock()
	held := l.held
	l.held = nil
	l.mu.Unlock()
	n := 0
	for _, h := range held {
		if h.rcv != rcv {
			continue
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		if rcv.ReleaseMessage(rctx, h.msg) == nil {
			n++
		}
		cancel()
	}
	l.dc.released.Add(uint64(n))
}
