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
	runs                         atomic.Uint64 // the last run (store.Command.Run) begun
}

// Order of released commands. AMQP 1.0 says nothing of where a released message
// goes (§3.4.4: it is made available for (re-)delivery); RabbitMQ puts a released
// message, and each unsettled one of a link that detaches, back at its place in
// the queue, whatever the order of the releases (TestRabbitMQReleaseOrder). So the
// cloud keeps a device's order if the gateway never commits a command for device D
// after an earlier one for D was refused, until that one is committed. Two rules
// make it so:
//
//   - every attached link is a run of appends (store.Command.Run): once the store
//     refuses a command of the run for device D, it refuses every later one of the
//     run for D, even if room returned meanwhile; so the receiver keeps up to the
//     CommandWindow of appends in flight, for any devices, and order still holds;
//   - on a refusal (no room), the receiver pauses: it releases the refused command,
//     the later ones the store refuses with it, and what still arrives, settles
//     the appends in flight, and then ends the link's session
//     (§2.5.5: its links detach with it), which ends the credit and gives back to
//     the cloud whatever was on its way. Once the store has room it begins a new
//     session and attaches a new link; the cloud hands out the released commands
//     first, in their order.
//
// A drain (§2.6.7) would end the credit without a new link, but RabbitMQ 3.10
// fails the link with amqp:internal-error on a drain from a classic queue; and it
// answers a closing detach of the link alone with a non-closing one (§2.6.6 wants
// a closing one), so go-amqp's Receiver.Close waits until its deadline. Ending the
// session is answered at once.

// commandWork is what the receiver's owner goroutine (serve) is told: a message
// from the link, the end of a reading round or a link error from the reader; an
// append's completion (msg, err, dev) from the store.
type commandWork struct {
	msg  *amqp.Message
	err  error // a link error, or the append's result
	over bool  // the reader's round ended (the pause stopped it)
	dev  string
}

// commandSession is the state of the receiver on one connection, owned by serve's
// goroutine.
type commandSession struct {
	r    *commandReceiver
	c    *connection
	sess *amqp.Session  // nil while paused and detached
	rcv  *amqp.Receiver // nil while paused and detached
	work chan commandWork
	// Appends' completions, from the store's committer, which must never block:
	// at most CommandWindow appends are ever in flight.
	dones chan commandWork

	runID    uint64            // the link's run of appends (store.Command.Run)
	backlog  []*pendingCommand // received beyond the window, waiting for an append slot
	inFlight int               // appends in flight
	owed     uint32            // credit of settled commands not granted again yet

	paused   bool      // a command was refused: give everything back until room returns
	pausedAt time.Time // when the pause began, or the last attach failed
	roomSeen bool      // the store signalled room since then
	reading  bool      // the reader's round is not over
	stopRead context.CancelFunc
	readers  sync.WaitGroup
	quit     chan struct{} // closed when serve ends: the reader stops sending
}

// pendingCommand is a command handed to the store, waiting for its commit.
type pendingCommand struct {
	msg *amqp.Message
	cmd *store.Command
}

// serve receives on one connection until ctx ends (see user).
func (r *commandReceiver) serve(ctx context.Context, c *connection) error {
	cs := &commandSession{
		r: r, c: c,
		work:  make(chan commandWork, CommandWindow+2),
		dones: make(chan commandWork, CommandWindow),
		quit:  make(chan struct{}),
	}
	defer cs.detach()
	if err := cs.attach(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		var ae *amqp.Error
		if !errors.As(err, &ae) {
			return fmt.Errorf("commands: %w", err)
		}
		r.u.log.Warn("commands: receiver refused; retrying with the next connection", "address", r.u.cfg.Commands, "err", readable(err))
		<-ctx.Done()
		return nil
	}
	r.u.log.Info("commands: receiving", "address", r.u.cfg.Commands, "window", CommandWindow)
	defer cs.finish()
	return cs.run(ctx)
}

// attach begins a session, attaches a receiver on Config.Commands, grants it the
// window and starts reading from it.
func (cs *commandSession) attach(ctx context.Context) error {
	sess, err := cs.c.newSession(ctx)
	if err != nil {
		return fmt.Errorf("begin session: %w", err)
	}
	cs.sess = sess
	rcv, err := sess.NewReceiver(ctx, cs.r.u.cfg.Commands, &amqp.ReceiverOptions{
		// Manual credit (§2.6.7): the window is granted once and topped up as
		// commands are settled upstream, so no more than CommandWindow are ever
		// in memory.
		Credit:           -1,
		SourceDurability: cs.r.u.durability,
		SettlementMode:   amqp.ReceiverSettleModeFirst.Ptr(),
	})
	if err != nil {
		cs.detach()
		return err
	}
	if err := rcv.IssueCredit(CommandWindow); err != nil {
		cs.detach()
		return fmt.Errorf("grant credit: %w", err)
	}
	cs.rcv, cs.owed, cs.runID = rcv, 0, cs.r.runs.Add(1)
	cs.r.attached.Store(true)
	cs.startReading(ctx, rcv)
	return nil
}

// run is serve's loop; it returns nil when ctx ends or the link goes away on a live
// connection (it attaches again with the next one).
func (cs *commandSession) run(ctx context.Context) error {
	room := cs.r.sink.WatchCommandRoom()
	defer room.Stop()
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var retryC <-chan time.Time
		if cs.paused {
			if done, err := cs.pauseStep(ctx); err != nil || ctx.Err() != nil {
				return err
			} else if done {
				continue
			}
			if retry == nil {
				// Without a room signal, try again after a while: what filled the
				// store may have expired.
				retry = time.NewTimer(time.Until(cs.pausedAt.Add(5 * time.Second)))
			}
			retryC = retry.C
		} else if retry != nil {
			retry.Stop()
			retry = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-room.C:
			cs.roomSeen = true
		case <-retryC:
			retry = nil
			cs.roomSeen = true
		case w := <-cs.dones:
			cs.completed(w)
		case w := <-cs.work:
			if err := cs.handle(ctx, w); err != nil {
				return err
			}
		}
	}
}

// pauseStep moves a pause on as far as it can: once the reader's round is over and
// no append is in flight, it detaches the link; once the store has room, it
// attaches a new one and the pause ends. It reports whether it changed anything.
func (cs *commandSession) pauseStep(ctx context.Context) (bool, error) {
	if cs.reading || cs.inFlight > 0 {
		return false, nil
	}
	if cs.sess != nil {
		// Every message received is settled: the end gives back only what was on
		// its way, and ends the credit. A new link must not take commands before
		// the cloud has ended this session (what it still held for it goes back
		// then): without its answer, the connection ends, which settles it.
		if err := cs.detachWithin(ctx, pauseEndTimeout); err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			if cs.c.lost(err) {
				return false, cs.c.lostErr()
			}
			return false, fmt.Errorf("commands: the cloud did not answer the end of the receiver's session within %v: %w", pauseEndTimeout, err)
		}
		return true, nil
	}
	if !cs.roomSeen || cs.r.sink.CommandsFull() {
		return false, nil
	}
	if err := cs.attach(ctx); err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		if cs.c.lost(err) {
			return false, cs.c.lostErr()
		}
		cs.r.u.log.Warn("commands: receiver refused after a pause; trying again", "address", cs.r.u.cfg.Commands, "err", readable(err))
		cs.pausedAt, cs.roomSeen = time.Now(), false
		return false, nil
	}
	cs.paused = false
	return true, nil
}

// handle processes what the reader sent; it returns an error only to end serve.
func (cs *commandSession) handle(ctx context.Context, w commandWork) error {
	r := cs.r
	switch {
	case w.over:
		cs.reading = false
		cs.readers.Wait()
	case w.err != nil:
		cs.reading = false
		cs.readers.Wait()
		if ctx.Err() != nil {
			return nil
		}
		if cs.c.lost(w.err) {
			return cs.c.lostErr()
		}
		r.u.log.Warn("commands: receiver detached; it attaches again with the next connection", "address", r.u.cfg.Commands, "err", readable(w.err))
		<-ctx.Done()
		return nil
	default:
		cs.received(w.msg)
	}
	return nil
}

// received takes a message from the link.
func (cs *commandSession) received(m *amqp.Message) {
	r := cs.r
	if cs.paused {
		cs.release(m)
		return
	}
	cmd, rerr := commandFrom(m, r.u.cfg.Commands)
	if rerr != nil {
		r.rejected.Add(1)
		r.u.log.Warn("commands: command rejected", "err", rerr.Description)
		cs.settle(func(ctx context.Context) error { return cs.rcv.RejectMessage(ctx, m, rerr) })
		return
	}
	if r.sink.CommandsFull() {
		// Released commands would come straight back.
		cs.release(m)
		cs.pause()
		return
	}
	cmd.Run = cs.runID
	p := &pendingCommand{msg: m, cmd: cmd}
	if cs.inFlight >= CommandWindow {
		// More than the window arrived: RabbitMQ 3.10 does send more than the
		// credit the receiver meant (TestCommandsFromRabbitMQ saw 64 appends in
		// flight and more arriving; TestCommandsEndToEnd hundreds). They wait, in
		// order, for a slot; past maxBacklog the receiver pauses as for a full
		// store, so a deep cloud queue is not pulled into memory.
		if len(cs.backlog) >= maxBacklog {
			cs.release(m)
			cs.pause()
			return
		}
		cs.backlog = append(cs.backlog, p)
		return
	}
	cs.append(p)
}

// maxBacklog bounds the commands held beyond the window (see received).
const maxBacklog = 16 * CommandWindow

// append hands p to the store; its completion comes back on dones.
func (cs *commandSession) append(p *pendingCommand) {
	dev := p.cmd.Device
	cs.inFlight++
	dones := cs.dones
	cs.r.sink.AppendCommandAsync(p.cmd, func(err error) {
		dones <- commandWork{dev: dev, msg: p.msg, err: err}
	})
}

// completed settles a command after its append and hands the store the next one
// waiting.
func (cs *commandSession) completed(w commandWork) {
	r := cs.r
	cs.inFlight--
	switch {
	case w.err == nil:
		cs.settle(func(ctx context.Context) error {
			err := cs.rcv.AcceptMessage(ctx, w.msg)
			if err == nil {
				r.received.Add(1)
			}
			return err
		})
	case errors.Is(w.err, store.ErrFull):
		// §3.4.4 released: not taken; the cloud keeps it for later.
		r.u.log.Debug("commands: no room; released upstream", "device", w.dev, "err", w.err)
		cs.release(w.msg)
		cs.pause()
	default:
		r.rejected.Add(1)
		e := &amqp.Error{Condition: amqp.ErrCondInternalError, Description: w.err.Error()}
		cs.settle(func(ctx context.Context) error { return cs.rcv.RejectMessage(ctx, w.msg, e) })
	}
	if len(cs.backlog) > 0 && !cs.paused {
		p := cs.backlog[0]
		cs.backlog[0] = nil
		cs.backlog = cs.backlog[1:]
		cs.append(p)
	}
}

// pause stops taking commands after a refusal: the reader's round ends; pauseStep
// does the rest.
func (cs *commandSession) pause() {
	if cs.paused {
		return
	}
	cs.paused, cs.pausedAt, cs.roomSeen = true, time.Now(), false
	cs.r.u.log.Debug("commands: pausing until the store has room")
	cs.releaseBacklog()
	if cs.reading {
		cs.stopRead()
	}
}

// releaseBacklog gives back what waits for an append slot.
func (cs *commandSession) releaseBacklog() {
	for _, p := range cs.backlog {
		cs.release(p.msg)
	}
	cs.backlog = nil
}

// release gives m back to the cloud (§3.4.4), which keeps it in its place.
func (cs *commandSession) release(m *amqp.Message) {
	cs.r.released.Add(1)
	cs.settle(func(ctx context.Context) error { return cs.rcv.ReleaseMessage(ctx, m) })
}

// settle runs one disposition and, unless paused, grants the credit back in
// batches.
func (cs *commandSession) settle(do func(context.Context) error) {
	if cs.rcv == nil {
		return // detached: the cloud has them back
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	err := do(ctx)
	cancel()
	if err != nil {
		cs.r.u.log.Debug("commands: settling upstream failed; the cloud sends the command again", "err", err)
	}
	if cs.paused {
		return // the next link gets a whole window
	}
	cs.owed++
	if cs.owed >= CommandWindow/4 || len(cs.work)+len(cs.dones) == 0 {
		if err := cs.rcv.IssueCredit(cs.owed); err != nil {
			cs.r.u.log.Debug("commands: granting credit failed", "err", err)
		}
		cs.owed = 0
	}
}

// startReading starts a reader round on rcv: a goroutine that hands every message
// to serve until the round is stopped (a pause; then it says so and ends) or the
// link fails.
func (cs *commandSession) startReading(ctx context.Context, rcv *amqp.Receiver) {
	rctx, stop := context.WithCancel(ctx)
	cs.stopRead, cs.reading = stop, true
	cs.readers.Add(1)
	go func() {
		defer cs.readers.Done()
		defer stop()
		send := func(w commandWork) bool {
			select {
			case cs.work <- w:
				return true
			case <-cs.quit:
				return false
			}
		}
		for {
			m, err := rcv.Receive(rctx, nil)
			switch {
			case err == nil:
				if !send(commandWork{msg: m}) {
					return
				}
				continue
			case ctx.Err() != nil:
			case rctx.Err() != nil:
				send(commandWork{over: true})
			default:
				send(commandWork{err: err})
			}
			return
		}
	}()
}

// finish ends the session: the reader stops, the appends in flight complete and are
// settled (a committed command is accepted, so the cloud does not send it again),
// and what waits for its device goes back to the cloud.
func (cs *commandSession) finish() {
	if cs.reading {
		cs.stopRead()
	}
	close(cs.quit)
	cs.readers.Wait()
	cs.paused = true // no credit, no new appends
	cs.releaseBacklog()
	for cs.inFlight > 0 {
		cs.completed(<-cs.dones)
	}
}

// pauseEndTimeout bounds the wait for the cloud's answer to the end of the
// receiver's session in a pause.
const pauseEndTimeout = 10 * time.Second

// detach ends the receiver's session, if any, waiting shutdownGrace for the answer.
func (cs *commandSession) detach() error { return cs.detachWithin(context.Background(), shutdownGrace) }

func (cs *commandSession) detachWithin(ctx context.Context, timeout time.Duration) error {
	if cs.sess == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	err := cs.sess.Close(cctx)
	cancel()
	cs.sess, cs.rcv = nil, nil
	cs.r.attached.Store(false)
	return err
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
