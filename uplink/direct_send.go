package uplink

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// errIdle ends a target's link that no device link used for the idle time.
var errIdle = errors.New("idle")

// pending is a direct delivery on the wire, awaiting its outcome.
type pending struct {
	it      directItem
	receipt amqp.SendReceipt
}

// pump sends the target's queued deliveries on l in order until the link fails (its
// error is returned) or ctx ends; a settling goroutine awaits the outcomes in the same
// order, until wctx ends. It returns after both ended; what was queued and not sent
// is left to setReady(false).
func (t *DirectTarget) pump(ctx, wctx context.Context, c *connection, l *link) error {
	receipts := make(chan pending, 256)
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		t.settleAll(wctx, c, receipts)
	}()
	err := t.sendAll(ctx, wctx, l, receipts)
	// Take the credit back first (the caller's setReady(false) does, after the outcomes
	// in flight): mark not ready now so that the devices learn it at once.
	t.setReady(false)
	close(receipts)
	<-settled
	return err
}

// sendAll is pump's sending loop.
func (t *DirectTarget) sendAll(ctx, wctx context.Context, l *link, receipts chan<- pending) error {
	t.d.mu.Lock()
	idle := t.d.idle
	t.d.mu.Unlock()
	check := time.NewTicker(max(idle/4, time.Millisecond))
	defer check.Stop()
	for {
		if ctx.Err() != nil {
			return ctx.Err() // what is queued is released by setReady(false)
		}
		t.mu.Lock()
		var it directItem
		ok := len(t.queue) > 0
		if ok {
			it = t.queue[0]
			t.queue[0] = directItem{}
			t.queue = t.queue[1:]
		}
		t.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wctx.Done():
				return errLinkGone
			case <-t.wake:
			case <-check.C:
				if t.d.retire(t) {
					return errIdle
				}
			}
			continue
		}
		msg, err := t.prepare(it)
		if err != nil {
			t.finish(it, &amqp.StateRejected{Error: &amqp.Error{Condition: amqp.ErrCondDecodeError, Description: err.Error()}})
			continue
		}
		if it.settled {
			// §2.6.12: the device settled it; so does the gateway: at most once.
			if err := l.snd.Send(wctx, msg, &amqp.SendOptions{Settled: true}); err != nil {
				t.finish(it, &amqp.StateReleased{})
				return err
			}
			t.finish(it, &amqp.StateAccepted{})
			continue
		}
		// It waits for the cloud's credit (§2.6.7); the devices' credit waits with it.
		receipt, err := l.snd.SendWithReceipt(wctx, msg, nil)
		if ae := (*amqp.Error)(nil); errors.As(err, &ae) && ae.Condition == amqp.ErrCondMessageSizeExceeded {
			// go-amqp checks the cloud's max-message-size before sending anything.
			t.finish(it, &amqp.StateRejected{Error: &amqp.Error{Condition: amqp.ErrCondMessageSizeExceeded,
				Description: fmt.Sprintf("too large for the cloud's max-message-size %d at %q", l.snd.MaxMessageSize(), t.cloud)}})
			continue
		}
		if err != nil {
			t.finish(it, &amqp.StateReleased{}) // never accepted: it may not have been sent whole
			return err
		}
		receipts <- pending{it: it, receipt: receipt}
	}
}

// settleAll awaits the outcomes in order and hands them to the devices. An outcome that
// cannot come (the link or the connection gone, the uplink stopped) is released.
func (t *DirectTarget) settleAll(wctx context.Context, c *connection, receipts <-chan pending) {
	for p := range receipts {
		state, err := p.receipt.Wait(wctx)
		if err != nil || state == nil {
			state = &amqp.StateReleased{}
		} else if _, ok := state.(*amqp.StateAccepted); ok {
			c.markReady()
		}
		t.finish(p.it, state)
	}
}

// prepare decodes a direct delivery for the cloud, changing only what an intermediary
// owns (see prepare for stored messages): the ttl loses the time spent in the gateway,
// delivery-annotations are dropped, the source annotation is set (see setSource).
func (t *DirectTarget) prepare(it directItem) (*amqp.Message, error) {
	msg, err := decode(it.payload)
	if err != nil {
		return nil, err
	}
	if h := msg.Header; h != nil && h.TTL > 0 {
		h.TTL = max((h.TTL - time.Since(it.received)).Truncate(time.Millisecond), time.Millisecond)
	}
	msg.DeliveryAnnotations = nil
	setSource(msg, t.d.u.cfg.sourceKey(), it.source, nil)
	return msg, nil
}
