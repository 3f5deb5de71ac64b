package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Device-bound queues (commands)
//
// Besides the upward queue, the store keeps one FIFO per device for messages the
// cloud sends to devices (commands, configuration, replies). They share the
// committer, and so the group commit, with the upward path. The file holds three
// more buckets, created on the first command:
//
//	cmd              one sub-bucket per device id: 8-byte seq → command record
//	cmddead          8-byte seq → command dead-letter record
//	cmdexp           8-byte expiry (Unix ns) + 8-byte seq → device id
//	meta "cmdtotals" delivered, expired, dead-lettered, superseded, refused (5 × 8 bytes)
//
// Seqs come from the store's one sequence, so a seq names one message in the
// whole file. A command record, version 1:
//
//	1 byte   version (1)
//	8 bytes  received time, Unix ns
//	8 bytes  expiry time, Unix ns (always set: see CommandOptions)
//	uvarint  length of the supersede key, then the key
//	uvarint  length of address, then the address
//	uvarint  length of source, then the source
//	rest     payload, opaque to the store
//
// A command dead letter: version (1), dead-lettered at (8 bytes), uvarint length
// and device id, uvarint length and reason, then the command record.
//
// The queued counts per device are recounted at Open (one read of the cmd
// buckets); the totals are persisted in every commit that changes them.

// Command is one message queued for a device.
type Command struct {
	Seq      uint64    // assigned by the store, shared with the upward queue's sequence
	Device   string    // the device the command is for
	Key      string    // supersede key: a newer command with the same key replaces this one; "" for none
	Address  string    // the address the cloud sent it to, kept for the operator
	Source   string    // who sent it (the cloud source address)
	Received time.Time // when the gateway took it; zero: now
	// Expires is when the command expires as its producer read it from the message;
	// zero: CommandOptions.DefaultTTL after Received. CommandOptions.MaxTTL caps it.
	// Read returns the expiry in force.
	Expires time.Time
	Payload []byte
	// Run, when not 0, names an ordered run of appends for Device (one producer's
	// link, say): once an append of a run is refused for lack of room (ErrFull),
	// every later append of that run for Device is refused too, even if room
	// returned meanwhile, so that no command is committed behind an earlier one the
	// producer must hand back. A producer keeps many appends in flight and still
	// keeps each device's order; it starts a new run after it gave the refused ones
	// back.
	Run uint64
}

// CommandDeadLetter is a command a device refused, kept with the device's reason.
type CommandDeadLetter struct {
	Command
	Reason string
	At     time.Time
}

// CommandOptions configure the device-bound queues. Zero fields take the defaults.
type CommandOptions struct {
	DefaultTTL        time.Duration // commands without an expiry: default 1 h
	MaxTTL            time.Duration // cap on any expiry: default 48 h
	MaxPerDevice      uint64        // queued commands per device: default 1000
	MaxBytesPerDevice uint64        // queued payload bytes per device: default 1 MiB
	MaxMessages       uint64        // queued commands in total: default 100000
	MaxBytes          uint64        // queued payload bytes in total: default 64 MiB
}

func (o CommandOptions) withDefaults() CommandOptions {
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = time.Hour
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = 48 * time.Hour
	}
	o.DefaultTTL = min(o.DefaultTTL, o.MaxTTL)
	def(&o.MaxPerDevice, 1000)
	def(&o.MaxBytesPerDevice, 1<<20)
	def(&o.MaxMessages, 100000)
	def(&o.MaxBytes, 64<<20)
	return o
}

// CommandStats are the device-bound queues' counters. Delivered, Expired,
// DeadLettered, Superseded and Refused are totals that survive restarts.
type CommandStats struct {
	Messages     uint64 // queued now, all devices
	Bytes        uint64
	Devices      int    // devices with queued commands
	DeadLetters  uint64 // command dead letters kept now
	Delivered    uint64 // accepted by their device
	Expired      uint64 // expired before delivery, never delivered
	DeadLettered uint64 // refused by their device (rejected, undeliverable-here)
	Superseded   uint64 // replaced by a newer command with the same key
	Refused      uint64 // not taken: a budget was used up (the producer keeps them)
	FullReason   string // why the last append was refused, "" once one succeeded
}

// CommandQueue describes one device's queue, for status and the queue command.
type CommandQueue struct {
	Device      string
	Messages    uint64
	Bytes       uint64
	Oldest      time.Time // received time of the first queued command
	DeadLetters uint64
}

// AppendCommand stores c durably in its device's queue and sets c.Seq; it returns
// after the commit. It fails with an error wrapping ErrFull when the device's or the
// total budget is used up (the producer keeps the command and tries later). The
// store takes ownership of c.Payload.
func (s *Store) AppendCommand(ctx context.Context, c *Command) error {
	r, err := s.newCommand(c)
	if err != nil {
		return err
	}
	seq, err := s.do(ctx, r)
	if err != nil {
		return err
	}
	c.Seq = seq
	return nil
}

// AppendCommandAsync is AppendCommand with a completion, called once on the
// committer goroutine (see AppendAsync for what done may do).
func (s *Store) AppendCommandAsync(c *Command, done func(error)) {
	r, err := s.newCommand(c)
	if err == nil {
		r.done = func(seq uint64, err error) {
			if err == nil {
				c.Seq = seq
			}
			done(err)
		}
		err = s.enqueue(context.Background(), r)
	}
	if err != nil {
		done(fmt.Errorf("store: append command: %w", err))
	}
}

func (s *Store) newCommand(c *Command) (*request, error) {
	if c.Device == "" {
		return nil, fmt.Errorf("store: append command: no device id")
	}
	if recordSize(c.Address, c.Source+c.Key, len(c.Payload))+uint64(len(c.Device)) > bolt.MaxValueSize {
		return nil, fmt.Errorf("store: append command: %d payload bytes: %w", len(c.Payload), ErrTooLarge)
	}
	received := c.Received
	if received.IsZero() {
		received = time.Now()
	}
	o := s.opts.Commands
	limit := received.Add(o.MaxTTL)
	exp := c.Expires
	if exp.IsZero() {
		exp = received.Add(o.DefaultTTL)
	}
	if exp.After(limit) {
		exp = limit
	}
	e := unixNanos(exp)
	if e <= 0 {
		e = 1
	}
	return &request{kind: opCmdAppend, device: c.Device, key: c.Key, address: c.Address, source: c.Source,
		received: unixNanos(received), expires: e, payload: c.Payload, run: c.Run}, nil
}

// DeleteCommand removes a delivered command (its device accepted it) and counts it
// as delivered. done (nil allowed) is called on the committer after the commit.
func (s *Store) DeleteCommand(device string, seq uint64, done func(error)) {
	s.cmdAsync(&request{kind: opCmdDelete, device: device, seqs: []uint64{seq}}, done)
}

// DeadLetterCommand moves a queued command to the command dead letters with the
// device's reason.
func (s *Store) DeadLetterCommand(device string, seq uint64, reason string, done func(error)) {
	s.cmdAsync(&request{kind: opCmdDead, device: device, seqs: []uint64{seq}, reason: reason}, done)
}

// RewriteCommand replaces the payload of a queued command (for AMQP: the header's
// delivery-count incremented after a modified delivery-failed outcome, §3.4.5),
// keeping its place in the queue. The device's watches fire after the commit.
func (s *Store) RewriteCommand(device string, seq uint64, payload []byte, done func(error)) {
	s.cmdAsync(&request{kind: opCmdRewrite, device: device, seqs: []uint64{seq}, payload: payload}, done)
}

// PurgeCommands deletes the queued commands of device ("" for every device), or
// with dead its command dead letters, and returns how many it deleted.
func (s *Store) PurgeCommands(ctx context.Context, device string, dead bool) (uint64, error) {
	reason := ""
	if dead {
		reason = "dead"
	}
	return s.do(ctx, &request{kind: opCmdPurge, device: device, reason: reason})
}

func (s *Store) cmdAsync(r *request, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	r.done = func(_ uint64, err error) { done(err) }
	if err := s.enqueue(context.Background(), r); err != nil {
		done(fmt.Errorf("store: %s: %w", r.kind, err))
	}
}

// CommandStats returns the device-bound queues' counters.
func (s *Store) CommandStats() CommandStats {
	if p := s.cmdStats.Load(); p != nil {
		return *p
	}
	return CommandStats{}
}

// CommandsFull reports whether the total command budget is used up, so that a
// producer (the uplink's receiver) should pause. Cheap.
func (s *Store) CommandsFull() bool {
	st := s.CommandStats()
	o := s.opts.Commands
	return st.Messages >= o.MaxMessages || st.Bytes >= o.MaxBytes
}

// WatchCommands returns a Watch that receives a value after each commit that
// queued or rewrote a command for device: how the device's sender learns there is
// something new to read. Any number of watches per device.
func (s *Store) WatchCommands(device string) *Watch { return s.cmdSig.watch(device) }

// WatchCommandRoom returns a Watch that receives a value after each commit that
// removed commands (delivered, expired, dead-lettered, purged): how a producer
// that was refused for lack of room learns when to try again.
func (s *Store) WatchCommandRoom() *Watch { return s.cmdRoom.watch() }

// deviceSignals is a signal per device id.
type deviceSignals struct {
	mu   sync.Mutex
	sigs map[string]*signal
}

func (d *deviceSignals) watch(device string) *Watch {
	d.mu.Lock()
	if d.sigs == nil {
		d.sigs = make(map[string]*signal)
	}
	g := d.sigs[device]
	if g == nil {
		g = &signal{}
		d.sigs[device] = g
	}
	d.mu.Unlock()
	return g.watch()
}

func (d *deviceSignals) fire(device string) {
	d.mu.Lock()
	g := d.sigs[device]
	d.mu.Unlock()
	if g != nil {
		g.fire()
	}
}

// cmdStatsPtr is the published CommandStats.
type cmdStatsPtr = atomic.Pointer[CommandStats]
