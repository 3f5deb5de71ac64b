package uplink

import "time"

// dispatch hands m to its target's lane if it can do so at once, or leaves it
// stored; it returns the lane only when m must wait for room in its queue. m stays
// stored, for a later pass, when passOver says so, or when its address is held,
// passed by in this pass, or needs a link beyond MaxLinks; then the address's
// later messages stay stored as well, to keep their order.
func (f *forwarder) dispatch(m *storedMessage, now time.Time) *lane {
	if m.Address == "" {
		f.deadLetter(m.Seq, "", errNoAddress.Error())
		return nil
	}
	if f.pass.skip[m.Address] || f.passOver(m.Seq, nil) {
		return nil // things changed since it was read
	}
	target := f.target(m)
	if f.u.held.held(target, now) {
		f.skipAddress(m.Address)
		return nil
	}
	l := f.lanes[target]
	if l == nil {
		if len(f.lanes) >= f.u.cfg.MaxLinks {
			// Each lane needs a link: this address waits until the messages in flight
			// are settled and all links were closed.
			f.needLinks = true
			f.skipAddress(m.Address)
			return nil
		}
		l = f.startLane(target, m.Address)
	}
	if l.passed {
		f.skipAddress(m.Address)
		return nil
	}
	it := item{m: m, gen: l.gen.Load()}
	select {
	case l.queue <- it:
		f.handed(l, it)
		return nil
	default:
		return l
	}
}

// passOver reports whether the message seq of address (nil: not known) stays
// stored in this pass: it is in flight or busy (being deleted, dead-lettered or
// rewritten), the cloud called it undeliverable here, or its address is skipped
// in this pass. It is the filter of the owner's reads, so that what it passes over
// is not even copied out of the store.
//
// A message still handed to a lane whose items are being dropped (the lane
// halted) comes back to the store's hands soon: its address is skipped, so that
// the address's later messages wait for the next pass with it.
func (f *forwarder) passOver(seq uint64, address []byte) bool {
	if address != nil && f.pass.skip[string(address)] {
		return true
	}
	if h, ok := f.inflight[seq]; ok {
		if h.gen != h.lane.gen.Load() {
			f.skipAddress(h.address)
		}
		return true
	}
	if _, ok := f.busy[seq]; ok {
		return true
	}
	_, ok := f.undeliverable[seq]
	return ok
}

// skipAddress leaves the later messages of the stored address stored for the rest
// of the pass.
func (f *forwarder) skipAddress(address string) {
	if f.pass.skip == nil {
		f.pass.skip = map[string]bool{}
	}
	f.pass.skip[address] = true
	f.pass.othersFor = nil
}

// slowLeft returns how much longer lane l, whose queue is full, must be slow for
// its address to be passed by, and why. Waiting for room is backpressure like any
// other, unless the lane is slow for reasons of its own address, which must not
// hold up the others:
//   - its sender waited creditWait in all for the cloud (an attach, link credit,
//     §2.6.7) since it last caught up with the owner, be it in one long wait or
//     in many short ones of a link that gets credit slowly;
//   - or it holds more than half the InFlight window, its outcomes are slow to
//     come, the owner waited creditWait in all for room in it since it last
//     caught up, and messages of other addresses wait in the batch.
//
// Waits for the rate limit or for a window taken by other lanes do not count.
func (f *forwarder) slowLeft(l *lane, now time.Time) (time.Duration, string) {
	wait := min(creditWait, f.u.cfg.StallTimeout/2)
	left, reason := wait-l.cloudWaited(now), "the cloud is slow to give link credit"
	if l.handed-len(l.queue) > f.window.size()/2 && f.othersWait() {
		if d := wait - l.fullWaited - now.Sub(f.pass.blockedAt); d < left {
			left, reason = d, "the cloud is slow to settle"
		}
	}
	return left, reason
}

// othersWait reports whether the batch holds, after the message waiting for the
// blocked lane, one for another address that is not skipped. The answer is kept
// for the lane until the owner reads another batch or skips an address: the lane
// of a busy address blocks again and again, and the batch is scanned once, not at
// every block (a message of another address found stays the answer until the
// owner dispatched it; none found stays the answer).
func (f *forwarder) othersWait() bool {
	p := &f.pass
	if l := p.blocked; p.othersFor != l || p.othersAt <= p.next {
		p.othersFor, p.othersAt = l, len(p.batch)
		for i := p.next + 1; i < len(p.batch); i++ {
			if a := p.batch[i].Address; a != l.address && !p.skip[a] {
				p.othersAt = i
				break
			}
		}
	}
	return p.othersAt < len(p.batch)
}

// passBy passes the address of lane l by: the message waiting for it and the
// address's later messages stay stored, in order, while the owner reads on for the
// other addresses. Once the lane has sent what it has queued, it reports that it
// caught up, and a new pass sends the rest.
func (f *forwarder) passBy(l *lane, reason string, now time.Time) {
	f.u.log.Debug("passing address by", "target", l.target, "reason", reason)
	l.fullWaited += now.Sub(f.pass.blockedAt)
	f.pass.blocked = nil
	f.pass.next++
	f.skipAddress(l.address)
	l.passed = true
	l.watch.Store(true)
	if len(l.queue) == 0 && l.watch.Swap(false) {
		// The sender emptied the queue before it could see watch.
		f.caughtUp(l)
	}
}

// caughtUp ends the pass-by of lane l's address: a new pass sends its later
// messages.
func (f *forwarder) caughtUp(l *lane) {
	if !l.passed {
		return
	}
	l.passed = false
	if !l.retired {
		f.u.log.Debug("passed-by address goes on", "target", l.target)
		f.pass.restart = true
	}
}

// hold holds l's target with reason on its own backoff (see holds) and halts its lane.
func (f *forwarder) hold(l *lane, reason string, min time.Duration) {
	target := l.target
	until := f.u.held.hold(target, l.address, reason, f.u.clk.Now(), min, max(f.u.cfg.BackoffMax, min))
	f.u.log.Debug("address held", "target", target, "reason", reason, "until", until)
	if f.holdDue.IsZero() || until.Before(f.holdDue) {
		f.holdDue = until
	}
	if l := f.lanes[target]; l != nil {
		f.halt(l)
	}
}

// halt drops what lane l has queued and not yet sent: it stays stored. The lane's
// address waits for a new pass, after the drops came back (see settled).
func (f *forwarder) halt(l *lane) {
	l.gen.Add(1)
	l.stale = l.handed
	l.passed = false
	if f.pass.blocked == l {
		f.pass.blocked = nil
		f.pass.next++
	}
	f.skipAddress(l.address)
}

// retire halts lane l and closes its queue: its goroutines end once its outcomes
// are in, and it ends its session. A new lane is started for its address when
// needed.
func (f *forwarder) retire(l *lane) {
	if l.retired {
		return
	}
	f.halt(l)
	l.retired = true
	close(l.queue)
	if f.lanes[l.target] == l {
		delete(f.lanes, l.target)
	}
}
