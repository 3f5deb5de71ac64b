package uplink

import (
	"context"
	"errors"
	"time"
)

// errDeadline is the cause of a deadline guard's context when its time ran out.
var errDeadline = errors.New("uplink: deadline passed")

// deadline bounds one wait at a time (a send waiting for link credit, a settling
// goroutine waiting for an outcome) without a context and a timer per wait: the
// context lives as long as it is not cancelled, and one timer is reset for each wait.
// It costs an allocation only after its time ran out once. A deadline belongs to one
// goroutine; its zero value is not ready: use newDeadline, and stop with close.
type deadline struct {
	parent context.Context
	d      time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func newDeadline(parent context.Context, d time.Duration) *deadline {
	g := &deadline{parent: parent, d: d}
	g.renew()
	return g
}

// renew makes a fresh context and timer; the old timer may still be firing, and
// cancels only the old context.
func (g *deadline) renew() {
	ctx, cancel := context.WithCancelCause(g.parent)
	g.ctx, g.cancel = ctx, cancel
	g.timer = time.AfterFunc(g.d, func() { cancel(errDeadline) })
	g.timer.Stop()
}

// start returns the context of a wait that ends after d at the latest.
func (g *deadline) start() context.Context {
	g.timer.Reset(g.d)
	return g.ctx
}

// stop ends the wait started last and reports whether its time ran out (and not
// the parent's).
func (g *deadline) stop() (passed bool) {
	if g.timer.Stop() {
		return false
	}
	// The timer fired, or is firing: its context is or will be cancelled; the next
	// wait gets a fresh one.
	passed = g.parent.Err() == nil
	g.renew()
	return passed
}

// close releases the context.
func (g *deadline) close() {
	g.timer.Stop()
	g.cancel(nil)
}
