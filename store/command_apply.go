package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketCmd     = []byte("cmd")
	bucketCmdDead = []byte("cmddead")
	bucketCmdExp  = []byte("cmdexp")
	keyCmdTotals  = []byte("cmdtotals")
)

// cmdCount is one device's queued commands.
type cmdCount struct{ n, bytes uint64 }

// cmdTotals are the persisted totals, in the order of their encoding.
type cmdTotals struct{ delivered, expired, dead, superseded, refused uint64 }

func (t cmdTotals) encode() []byte {
	b := make([]byte, 0, 40)
	for _, v := range []uint64{t.delivered, t.expired, t.dead, t.superseded, t.refused} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func decodeCmdTotals(v []byte) (t cmdTotals) {
	p := []*uint64{&t.delivered, &t.expired, &t.dead, &t.superseded, &t.refused}
	for i := range p {
		if len(v) >= 8*(i+1) {
			*p[i] = binary.BigEndian.Uint64(v[8*i:])
		}
	}
	return t
}

// cmdState is the committer's state of the device-bound queues. The committed
// fields change only after a commit succeeded; the pending ones belong to the
// transaction being built.
type cmdState struct {
	devices  map[string]cmdCount // committed queued counts per device
	n, bytes uint64              // committed totals of devices
	deadN    uint64              // committed dead letters
	totals   cmdTotals           // committed (persisted) totals
	nextExp  int64               // earliest command expiry, 0: none
	fullWhy  string
	refused  map[string]uint64 // per device, the run (Command.Run) of its last refused append

	// The transaction being built.
	active         bool
	delta          map[string]cmdCount // per device counts as they will be
	pn, pbytes     uint64
	pdead          uint64
	ptotals        cmdTotals
	appended       map[string]bool // devices to wake after the commit
	removed        bool            // something left a queue: wake the room watches
	pfullWhy       string
	cmd, dead, exp *bolt.Bucket
}

// loadCommands counts the queued commands at Open.
func (s *Store) loadCommands() error {
	c := &s.cmd
	c.devices = make(map[string]cmdCount)
	c.refused = make(map[string]uint64)
	err := s.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			c.totals = decodeCmdTotals(meta.Get(keyCmdTotals))
		}
		if b := tx.Bucket(bucketCmd); b != nil {
			err := b.ForEachBucket(func(dev []byte) error {
				var cc cmdCount
				err := b.Bucket(dev).ForEach(func(k, v []byte) error {
					if h, err := decodeCmdRecord(v); err == nil {
						cc.n++
						cc.bytes += uint64(len(h.payload))
					}
					return nil
				})
				if cc.n > 0 {
					c.devices[string(dev)] = cc
					c.n += cc.n
					c.bytes += cc.bytes
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketCmdDead); b != nil {
			c.deadN = uint64(b.Stats().KeyN)
		}
		c.nextExp = 0
		if b := tx.Bucket(bucketCmdExp); b != nil {
			if k, _ := b.Cursor().First(); len(k) == 16 {
				c.nextExp = int64(binary.BigEndian.Uint64(k))
			}
		}
		return nil
	})
	s.publishCommands()
	return err
}

// cmdBegin prepares the pending state for the transaction of t, creating the
// buckets on first use.
func (s *Store) cmdBegin(t *txn) error {
	c := &s.cmd
	if c.active {
		return nil
	}
	tx := t.meta.Tx()
	var err error
	if c.cmd, err = tx.CreateBucketIfNotExists(bucketCmd); err != nil {
		return err
	}
	if c.dead, err = tx.CreateBucketIfNotExists(bucketCmdDead); err != nil {
		return err
	}
	if c.exp, err = tx.CreateBucketIfNotExists(bucketCmdExp); err != nil {
		return err
	}
	c.dead.FillPercent = 1.0
	c.active = true
	c.delta = make(map[string]cmdCount)
	c.pn, c.pbytes, c.pdead, c.ptotals, c.pfullWhy = c.n, c.bytes, c.deadN, c.totals, c.fullWhy
	c.appended = make(map[string]bool)
	c.removed = false
	return nil
}

// count returns the device's queued counts as the transaction has them.
func (c *cmdState) count(dev string) cmdCount {
	if v, ok := c.delta[dev]; ok {
		return v
	}
	return c.devices[dev]
}

func (c *cmdState) add(dev string, n, b uint64) {
	v := c.count(dev)
	v.n += n
	v.bytes += b
	c.delta[dev] = v
	c.pn += n
	c.pbytes += b
}

func (c *cmdState) remove(dev string, b uint64) {
	v := c.count(dev)
	sub(&v.n, 1)
	sub(&v.bytes, b)
	c.delta[dev] = v
	sub(&c.pn, 1)
	sub(&c.pbytes, b)
	c.removed = true
}

// cmdEnd finishes the transaction's command work: expiry, and the totals if
// they changed. It runs in every write transaction (cheap when no command is due).
func (s *Store) cmdEnd(t *txn, now int64) error {
	c := &s.cmd
	if !c.active && (c.nextExp == 0 || c.nextExp > now) {
		return nil
	}
	if err := s.cmdBegin(t); err != nil {
		return err
	}
	if err := s.purgeExpiredCommands(now); err != nil {
		return err
	}
	if c.ptotals != c.totals {
		if err := t.meta.Put(keyCmdTotals, c.ptotals.encode()); err != nil {
			return fmt.Errorf("put command totals: %w", err)
		}
	}
	return nil
}

// cmdCommitted makes the pending state the committed one and wakes the watches;
// cmdAborted drops it. One of them follows every write transaction.
func (s *Store) cmdCommitted() {
	c := &s.cmd
	if !c.active {
		return
	}
	for dev, v := range c.delta {
		if v.n == 0 {
			delete(c.devices, dev)
		} else {
			c.devices[dev] = v
		}
	}
	c.n, c.bytes, c.deadN, c.totals, c.fullWhy = c.pn, c.pbytes, c.pdead, c.ptotals, c.pfullWhy
	appended, removed := c.appended, c.removed
	s.cmdReset()
	s.publishCommands()
	for dev := range appended {
		s.cmdSig.fire(dev)
	}
	if removed {
		s.cmdRoom.fire()
	}
}

func (s *Store) cmdAborted() {
	if !s.cmd.active {
		return
	}
	s.cmdReset()
	_ = s.db.View(func(tx *bolt.Tx) error {
		s.cmd.nextExp = 0
		if b := tx.Bucket(bucketCmdExp); b != nil {
			if k, _ := b.Cursor().First(); len(k) == 16 {
				s.cmd.nextExp = int64(binary.BigEndian.Uint64(k))
			}
		}
		return nil
	})
}

func (s *Store) cmdReset() {
	c := &s.cmd
	c.active, c.delta, c.appended, c.cmd, c.dead, c.exp = false, nil, nil, nil, nil, nil
}

func (s *Store) publishCommands() {
	c := &s.cmd
	s.cmdStats.Store(&CommandStats{
		Messages: c.n, Bytes: c.bytes, Devices: len(c.devices), DeadLetters: c.deadN,
		Delivered: c.totals.delivered, Expired: c.totals.expired, DeadLettered: c.totals.dead,
		Superseded: c.totals.superseded, Refused: c.totals.refused, FullReason: c.fullWhy,
	})
}

// applyCommand performs one command request in t.
func (s *Store) applyCommand(t *txn, r *request) error {
	if err := s.cmdBegin(t); err != nil {
		return err
	}
	switch r.kind {
	case opCmdAppend:
		return s.applyCmdAppend(r)
	case opCmdDelete:
		found, err := s.removeCommand(r.device, r.seqs[0])
		if err == nil && found {
			s.cmd.ptotals.delivered++
		}
		return err
	case opCmdDead:
		return s.applyCmdDead(r)
	case opCmdRewrite:
		return s.applyCmdRewrite(r)
	case opCmdPurge:
		n, err := s.purgeCommands(r.device, r.reason == "dead")
		r.seq = n
		return err
	}
	return nil
}

func (s *Store) applyCmdAppend(r *request) error {
	c := &s.cmd
	if r.run != 0 && c.refused[r.device] == r.run {
		c.ptotals.refused++
		r.err = fmt.Errorf("store: append command: %w (an earlier command of the same run for device %s was refused)", ErrFull, r.device)
		return nil
	}
	dev := c.cmd.Bucket([]byte(r.device))
	if r.key != "" && dev != nil {
		// Supersede: the older commands with the same key leave the queue.
		var old []uint64
		err := dev.ForEach(func(k, v []byte) error {
			if h, err := decodeCmdRecord(v); err == nil && string(h.key) == r.key {
				old = append(old, binary.BigEndian.Uint64(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, seq := range old {
			if _, err := s.removeCommand(r.device, seq); err != nil {
				return err
			}
			c.ptotals.superseded++
		}
	}
	o := s.opts.Commands
	size := uint64(len(r.payload))
	cnt := c.count(r.device)
	why := ""
	switch {
	case cnt.n+1 > o.MaxPerDevice:
		why = fmt.Sprintf("device %s has %d queued commands (max %d)", r.device, cnt.n, o.MaxPerDevice)
	case cnt.bytes+size > o.MaxBytesPerDevice:
		why = fmt.Sprintf("device %s has %d queued command bytes (max %d)", r.device, cnt.bytes, o.MaxBytesPerDevice)
	case c.pn+1 > o.MaxMessages:
		why = fmt.Sprintf("%d commands queued (max %d)", c.pn, o.MaxMessages)
	case c.pbytes+size > o.MaxBytes:
		why = fmt.Sprintf("%d command bytes queued (max %d)", c.pbytes, o.MaxBytes)
	case s.diskLow():
		why = "the file system is below min-free"
	}
	if why != "" {
		c.ptotals.refused++
		c.pfullWhy = why
		if r.run != 0 {
			c.refused[r.device] = r.run
		}
		r.err = fmt.Errorf("store: append command: %w (%s)", ErrFull, why)
		return nil
	}
	c.pfullWhy = ""
	delete(c.refused, r.device) // a new run: the refused one was given back
	if dev == nil {
		var err error
		if dev, err = c.cmd.CreateBucket([]byte(r.device)); err != nil {
			return fmt.Errorf("create command queue %q: %w", r.device, err)
		}
	}
	dev.FillPercent = 1.0
	s.lastSeq++
	r.seq = s.lastSeq
	k := s.key(r.seq)
	start := len(s.arena)
	s.arena = appendCmdRecord(s.arena, r.received, r.expires, r.key, r.address, r.source, r.payload)
	if err := dev.Put(k, s.arena[start:len(s.arena):len(s.arena)]); err != nil {
		return fmt.Errorf("put command %d: %w", r.seq, err)
	}
	if err := c.exp.Put(s.cmdExpKey(r.expires, r.seq), []byte(r.device)); err != nil {
		return fmt.Errorf("put command expiry %d: %w", r.seq, err)
	}
	if c.nextExp == 0 || r.expires < c.nextExp {
		c.nextExp = r.expires
	}
	c.add(r.device, 1, size)
	c.appended[r.device] = true
	return nil
}

func (s *Store) cmdExpKey(exp int64, seq uint64) []byte {
	start := len(s.arena)
	s.arena = binary.BigEndian.AppendUint64(s.arena, uint64(exp))
	s.arena = appendSeqKey(s.arena, seq)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// removeCommand deletes a queued command and its expiry entry; it reports whether
// it was queued.
func (s *Store) removeCommand(device string, seq uint64) (bool, error) {
	c := &s.cmd
	dev := c.cmd.Bucket([]byte(device))
	if dev == nil {
		return false, nil
	}
	k := s.key(seq)
	v := dev.Get(k)
	if v == nil {
		return false, nil
	}
	var size uint64
	if h, err := decodeCmdRecord(v); err == nil {
		size = uint64(len(h.payload))
		if err := c.exp.Delete(s.cmdExpKey(h.expires, seq)); err != nil {
			return false, err
		}
	}
	if err := dev.Delete(k); err != nil {
		return false, fmt.Errorf("delete command %d: %w", seq, err)
	}
	c.remove(device, size)
	return true, nil
}

func (s *Store) applyCmdDead(r *request) error {
	c := &s.cmd
	seq := r.seqs[0]
	dev := c.cmd.Bucket([]byte(r.device))
	var v []byte
	if dev != nil {
		v = dev.Get(s.key(seq))
	}
	if v == nil {
		r.err = fmt.Errorf("store: %s %d: %w", r.kind, seq, ErrNotFound)
		return nil
	}
	start := len(s.arena)
	s.arena = append(s.arena, 1)
	s.arena = binary.BigEndian.AppendUint64(s.arena, uint64(time.Now().UnixNano()))
	s.arena = appendString(s.arena, r.device)
	s.arena = appendString(s.arena, r.reason)
	s.arena = append(s.arena, v...)
	val := s.arena[start:len(s.arena):len(s.arena)]
	if err := c.dead.Put(s.key(seq), val); err != nil {
		return fmt.Errorf("put command dead letter %d: %w", seq, err)
	}
	if _, err := s.removeCommand(r.device, seq); err != nil {
		return err
	}
	c.pdead++
	c.ptotals.dead++
	return nil
}

func (s *Store) applyCmdRewrite(r *request) error {
	c := &s.cmd
	seq := r.seqs[0]
	dev := c.cmd.Bucket([]byte(r.device))
	var v []byte
	if dev != nil {
		v = dev.Get(s.key(seq))
	}
	h, err := decodeCmdRecord(v)
	if v == nil || err != nil {
		r.err = fmt.Errorf("store: %s %d: %w", r.kind, seq, ErrNotFound)
		return nil
	}
	start := len(s.arena)
	s.arena = appendCmdRecord(s.arena, h.received, h.expires, string(h.key), string(h.address), string(h.source), r.payload)
	old := uint64(len(h.payload))
	val := s.arena[start:len(s.arena):len(s.arena)]
	if err := dev.Put(s.key(seq), val); err != nil {
		return fmt.Errorf("rewrite command %d: %w", seq, err)
	}
	cnt := c.count(r.device)
	sub(&cnt.bytes, old)
	cnt.bytes += uint64(len(r.payload))
	c.delta[r.device] = cnt
	sub(&c.pbytes, old)
	c.pbytes += uint64(len(r.payload))
	c.appended[r.device] = true
	return nil
}

// purgeCommands deletes up to purgeChunk commands (or command dead letters) of
// device, "" for all.
func (s *Store) purgeCommands(device string, dead bool) (uint64, error) {
	c := &s.cmd
	var n uint64
	if dead {
		var keys [][]byte
		_ = c.dead.ForEach(func(k, v []byte) error {
			if uint64(len(keys)) >= purgeChunk {
				return nil
			}
			if d, err := decodeCmdDead(v); err == nil && device != "" && d.Device != device {
				return nil
			}
			keys = append(keys, bytes.Clone(k))
			return nil
		})
		for _, k := range keys {
			if err := c.dead.Delete(k); err != nil {
				return n, err
			}
			sub(&c.pdead, 1)
			n++
		}
		return n, nil
	}
	var devs []string
	if device != "" {
		devs = []string{device}
	} else {
		_ = c.cmd.ForEachBucket(func(k []byte) error { devs = append(devs, string(k)); return nil })
	}
	for _, d := range devs {
		b := c.cmd.Bucket([]byte(d))
		if b == nil {
			continue
		}
		var seqs []uint64
		_ = b.ForEach(func(k, _ []byte) error {
			if len(k) == 8 && n+uint64(len(seqs)) < purgeChunk {
				seqs = append(seqs, binary.BigEndian.Uint64(k))
			}
			return nil
		})
		for _, seq := range seqs {
			if _, err := s.removeCommand(d, seq); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// purgeExpiredCommands deletes up to purgeChunk due commands.
func (s *Store) purgeExpiredCommands(now int64) error {
	c := &s.cmd
	if c.nextExp == 0 || c.nextExp > now {
		return nil
	}
	cur := c.exp.Cursor()
	var k, v []byte
	for i := 0; i < purgeChunk; i++ {
		k, v = cur.First()
		if k == nil {
			break
		}
		if len(k) != 16 {
			if err := cur.Delete(); err != nil {
				return err
			}
			continue
		}
		if int64(binary.BigEndian.Uint64(k)) > now {
			break
		}
		seq := binary.BigEndian.Uint64(k[8:])
		dev := string(v)
		if err := cur.Delete(); err != nil {
			return err
		}
		found, err := s.removeCommand(dev, seq)
		if err != nil {
			return err
		}
		if found {
			c.ptotals.expired++
		}
	}
	c.nextExp = 0
	if k, _ := cur.First(); len(k) == 16 {
		c.nextExp = int64(binary.BigEndian.Uint64(k))
	}
	return nil
}
