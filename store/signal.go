package store

import "sync"

// Watch is one consumer's subscription to a store signal (see Store.WatchAppends and
// Store.WatchRoom). C receives a value after each event; it has capacity 1, so events
// coalesce while the consumer is busy and a consumer never misses that something
// happened since it last looked. The store never blocks on a Watch. Whoever asked for a
// Watch calls Stop when done with it; Stop is idempotent.
type Watch struct {
	C <-chan struct{}

	c   chan struct{}
	sig *signal
}

// Stop ends the subscription; C receives nothing more.
func (w *Watch) Stop() { w.sig.remove(w.c) }

// signal broadcasts an event to any number of watches. fire is called by the
// committer; watch and Stop from any goroutine.
type signal struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (g *signal) watch() *Watch {
	c := make(chan struct{}, 1)
	g.mu.Lock()
	if g.subs == nil {
		g.subs = make(map[chan struct{}]struct{})
	}
	g.subs[c] = struct{}{}
	g.mu.Unlock()
	return &Watch{C: c, c: c, sig: g}
}

func (g *signal) remove(c chan struct{}) {
	g.mu.Lock()
	delete(g.subs, c)
	g.mu.Unlock()
}

// fire wakes every watch without blocking.
func (g *signal) fire() {
	g.mu.Lock()
	for c := range g.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
}

// WatchAppends returns a Watch that receives a value after every commit that appended
// messages: how a consumer of the queue (the uplink; a device-bound sender) learns that
// there is something new to read without polling. Any number of consumers may watch.
func (s *Store) WatchAppends() *Watch { return s.appended.watch() }

// WatchRoom returns a Watch that receives a value whenever Full or FullFor turned false
// for some address, after a commit or the committer's periodic check: how a producer
// that stopped while the store was full (the edge withholding link credit) learns, with
// no polling, that it may go on. Any number of producers may watch.
func (s *Store) WatchRoom() *Watch { return s.room.watch() }

// Notify returns the channel of the store's own Watch of appends (see WatchAppends), made
// at Open for one consumer, the uplink's forwarder. Other consumers use WatchAppends.
func (s *Store) Notify() <-chan struct{} { return s.notify.C }
