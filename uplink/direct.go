package uplink

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/hw/backoff"
)

// Direct forwards the messages of direct routes: a device's delivery goes to the cloud
// as it arrives, nothing of it is stored, and the device learns the cloud's own outcome
// (AMQP 1.0 §3.4), the way a link route of a router passes settlement end to end. It is
// a user of the uplink's connection beside the forwarder: on each connection it attaches
// one session and sender link per [DirectTarget], and when the connection goes it
// releases what is in flight and says so through Changed, so that the devices get no
// credit until the link is back.
//
// The cloud address is made as for stored messages (Config.AddressPrefix and
// AddressTemplate, with {route} the direct route's name), and the message gets
// [SourceAnnotation]; unlike a stored message it gets no message-id when it has none:
// it is never sent twice by the gateway. Its methods are safe for concurrent use.
//
// The cloud-to-device half, [DirectCommands], runs its receivers on the same
// connection, started by serve: both directions of the direct routes are one user.
type Direct struct {
	u    *Uplink
	log  *slog.Logger
	cmds *DirectCommands // nil: no device's commands are direct

	mu       sync.Mutex
	targets  map[string]*DirectTarget // by cloud address
	routes   map[string]*directCounters
	order    []string // route names in the order configured
	watchers map[chan struct{}]struct{}
	added    chan struct{} // capacity 1: a target was added, serve attaches it
	idle     time.Duration // a target no device link used for this long is closed
}

// DefaultDirectIdle is how long a direct route's cloud link stays attached with no
// device link using it, unless Direct.SetIdle says otherwise.
const DefaultDirectIdle = 5 * time.Minute

// SetIdle sets how long a target's link stays attached while no device link uses it
// (DefaultDirectIdle); call it before Run.
func (d *Direct) SetIdle(idle time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.idle = idle
}

// retire reports whether t has had no user for the idle time, and if so forgets it:
// the next device link to its address gets a new target.
func (d *Direct) retire(t *DirectTarget) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.users > 0 || t.idleSince.IsZero() || d.u.clk.Now().Sub(t.idleSince) < d.idle {
		return false
	}
	if d.targets[t.cloud] == t {
		delete(d.targets, t.cloud)
	}
	return true
}

// Release is called once for every Target call that returned t, when the device link
// that used it has ended.
func (t *DirectTarget) Release() {
	d := t.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.users--; t.users == 0 {
		t.idleSince = d.u.clk.Now()
	}
}

// directCounters count a direct route's deliveries.
type directCounters struct {
	inFlight                                     atomic.Int64
	accepted, rejected, released, modified, sent atomic.Uint64
}

// DirectRoute is the status of one direct route.
type DirectRoute struct {
	Name     string
	Targets  int    // cloud addresses in use
	Ready    int    // of them, those whose link is attached now
	InFlight int64  // deliveries awaiting the cloud's outcome
	Accepted uint64 // outcomes since New
	Rejected uint64
	Released uint64 // including deliveries released because the link was down
	Modified uint64
	Settled  uint64 // pre-settled deliveries sent (at most once)
}

func newDirect(u *Uplink) *Direct {
	return &Direct{
		u:        u,
		log:      u.log.With("part", "direct"),
		targets:  make(map[string]*DirectTarget),
		routes:   make(map[string]*directCounters),
		watchers: make(map[chan struct{}]struct{}),
		added:    make(chan struct{}, 1),
		idle:     DefaultDirectIdle,
	}
}

// Direct returns the uplink's direct forwarder.
func (u *Uplink) Direct() *Direct { return u.direct }

// AddRoute declares a direct route, so that Status lists it before it is used.
func (d *Direct) AddRoute(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.route(name)
}

func (d *Direct) route(name string) *directCounters {
	rc := d.routes[name]
	if rc == nil {
		rc = &directCounters{}
		d.routes[name] = rc
		d.order = append(d.order, name)
	}
	return rc
}

// Target returns the target of messages to address from source on the direct route
// named route, creating it (its link attaches as soon as the uplink is connected).
// Each call is one user of the target until its Release; a target without users is
// closed after the idle time (SetIdle).
func (d *Direct) Target(route, address, source string) *DirectTarget {
	cloud := d.u.cloudAddress(&storedMessage{Address: address, Source: source, Route: route})
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.targets[cloud]
	if t == nil {
		t = &DirectTarget{d: d, route: route, cloud: cloud, counters: d.route(route), wake: make(chan struct{}, 1)}
		d.targets[cloud] = t
		select {
		case d.added <- struct{}{}:
		default:
		}
	}
	t.users++
	t.idleSince = time.Time{}
	return t
}

// Changed returns a channel that receives a value whenever a target's readiness
// changed, and a function to stop watching.
func (d *Direct) Changed() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	d.watchers[ch] = struct{}{}
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(d.watchers, ch)
		d.mu.Unlock()
	}
}

func (d *Direct) signal() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Status returns the direct routes' counters, in the order they were added.
func (d *Direct) Status() []DirectRoute {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DirectRoute, 0, len(d.order))
	for _, name := range d.order {
		rc := d.routes[name]
		r := DirectRoute{Name: name, InFlight: rc.inFlight.Load(), Accepted: rc.accepted.Load(),
			Rejected: rc.rejected.Load(), Released: rc.released.Load(), Modified: rc.modified.Load(), Settled: rc.sent.Load()}
		for _, t := range d.targets {
			if t.route == name {
				r.Targets++
				if t.Ready() {
					r.Ready++
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// serve attaches the targets' links on c and keeps them until the connection goes; see
// user.
func (d *Direct) serve(ctx context.Context, c *connection) error {
	var wg sync.WaitGroup
	started := make(map[*DirectTarget]bool)
	defer wg.Wait()
	if d.cmds != nil {
		wg.Go(func() { d.cmds.serve(ctx, c) })
	}
	for {
		d.mu.Lock()
		var todo []*DirectTarget
		for _, t := range d.targets {
			if !started[t] {
				started[t] = true
				todo = append(todo, t)
			}
		}
		d.mu.Unlock()
		for _, t := range todo {
			wg.Go(func() { t.run(ctx, c) })
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-c.done():
			wg.Wait() // the targets saw it too, and released what was in flight
			return c.lostErr()
		case <-d.added:
		}
	}
}

// DirectTarget is one cloud address of a direct route: one sender link on the uplink's
// connection while it is up.
type DirectTarget struct {
	d        *Direct
	route    string
	cloud    string
	counters *directCounters
	wake     chan struct{} // capacity 1: queue has items

	users     int       // under d.mu: Target calls not yet released
	idleSince time.Time // under d.mu: when users fell to 0

	mu    sync.Mutex
	ready bool // the link is attached: Forward queues
	queue []directItem
}

// directItem is a delivery waiting to be sent.
type directItem struct {
	payload  []byte
	source   string
	received time.Time
	settled  bool
	done     func(amqp.DeliveryState)
}

// Address returns the cloud address.
func (t *DirectTarget) Address() string { return t.cloud }

// Ready reports whether the target's link is attached on a live connection.
func (t *DirectTarget) Ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready
}

// Forward sends payload (a message as the device sent it, from source) to the cloud, in
// the order of the calls, without blocking. done is called once, from another goroutine
// or, when the target is not ready, at once: with the cloud's outcome
// (*amqp.StateAccepted, *amqp.StateRejected, *amqp.StateReleased, *amqp.StateModified),
// or released when the link or the connection went before the outcome came. A settled
// delivery is sent settled (at most once); done then says accepted once it is written.
func (t *DirectTarget) Forward(payload []byte, source string, received time.Time, settled bool, done func(amqp.DeliveryState)) {
	t.mu.Lock()
	if !t.ready {
		t.mu.Unlock()
		t.counters.released.Add(1)
		done(&amqp.StateReleased{})
		return
	}
	t.queue = append(t.queue, directItem{payload: payload, source: source, received: received, settled: settled, done: done})
	t.counters.inFlight.Add(1)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// setReady changes the readiness; going down, it releases what is queued.
func (t *DirectTarget) setReady(on bool) {
	t.mu.Lock()
	was := t.ready
	t.ready = on
	var queued []directItem
	if !on {
		queued, t.queue = t.queue, nil
	}
	t.mu.Unlock()
	for _, it := range queued {
		t.finish(it, &amqp.StateReleased{})
	}
	if was != on {
		t.d.signal()
	}
}

// finish reports an outcome to the device and counts it.
func (t *DirectTarget) finish(it directItem, state amqp.DeliveryState) {
	t.counters.inFlight.Add(-1)
	switch state.(type) {
	case *amqp.StateAccepted:
		if it.settled {
			t.counters.sent.Add(1)
		} else {
			t.counters.accepted.Add(1)
		}
	case *amqp.StateRejected:
		t.counters.rejected.Add(1)
	case *amqp.StateModified:
		t.counters.modified.Add(1)
	default:
		t.counters.released.Add(1)
	}
	it.done(state)
}

// run attaches the target's link on c, sends until the link or the connection fails
// or ctx ends, and attaches again after a backoff while the connection lives.
func (t *DirectTarget) run(ctx context.Context, c *connection) {
	d := t.d
	cfg := &d.u.cfg
	bo := backoff.Backoff{Min: cfg.BackoffMin, Max: cfg.BackoffMax, Rand: d.u.clk.rand}
	// Ends when the connection goes, at once, or shutdownGrace after ctx ends: outcomes
	// in flight are awaited that long when the uplink stops.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, cancel) })
	defer stopGrace()
	go func() {
		select {
		case <-c.done():
			cancel()
		case <-wctx.Done():
		}
	}()
	for {
		// attach needs only the uplink and the connection of a forwarder.
		f := &forwarder{u: d.u, conn: c}
		l, refused, err := f.attach(ctx, t.cloud)
		var delay time.Duration
		if err != nil {
			if ctx.Err() != nil || !refused {
				return
			}
			delay = bo.Next()
			d.log.Warn("direct route: the cloud refused the link; devices get no credit", "route", t.route, "target", t.cloud, "err", err, "retry_in", delay.Round(time.Millisecond))
		} else {
			bo.Reset()
			d.log.Debug("direct link attached", "route", t.route, "target", t.cloud)
			t.setReady(true)
			err := t.pump(ctx, wctx, c, l)
			t.setReady(false)
			if err == errIdle {
				// Detach the link itself (§2.6.5): the cloud sees it closed, not only its
				// session ended.
				cctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = l.snd.Close(cctx)
				cancel()
			}
			closeSession(l)
			if err == errIdle {
				d.log.Info("direct link closed: no device uses it", "route", t.route, "target", t.cloud, "idle", d.idle)
				return
			}
			if ctx.Err() != nil || wctx.Err() != nil {
				return
			}
			delay = bo.Next()
			d.log.Warn("direct route: link lost; devices get no credit until it is back", "route", t.route, "target", t.cloud, "err", readable(err), "retry_in", delay.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-wctx.Done():
			return
		case <-d.u.clk.After(delay):
		}
	}
}
