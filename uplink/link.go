package uplink

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// link is the session and sender for one target address.
type link struct {
	sess *amqp.Session
	snd  *amqp.Sender
}

// link returns the sender for target, beginning a session and attaching a link if
// needed. If the cloud refuses them on a live connection, target is held and link
// returns errHeld; if MaxLinks links are open or being attached, errLinkLimit. It is
// safe for concurrent use for different targets.
func (f *forwarder) link(ctx context.Context, target string) (*amqp.Sender, error) {
	f.mu.Lock()
	l, ok := f.links[target]
	broken := f.broken[target]
	delete(f.broken, target)
	if ok && !broken {
		f.mu.Unlock()
		return l.snd, nil
	}
	if ok {
		delete(f.links, target)
	}
	full := len(f.links)+f.attaching >= f.u.cfg.MaxLinks
	if !full {
		f.attaching++
	}
	f.mu.Unlock()
	if ok {
		closeSession(ctx, l)
	}
	if full {
		return nil, errLinkLimit
	}
	defer func() {
		f.mu.Lock()
		f.attaching--
		f.mu.Unlock()
	}()

	actx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	sess, err := f.conn.NewSession(actx, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("begin session for %q: %w", target, readable(err))
	}
	// No settlement mode is requested (§2.7.3: the attach then says mixed and first,
	// the defaults). go-amqp refuses a link whose answered mode differs from one it
	// requested, and a broker may legally answer mixed (rhea does) or second. Every
	// message is still sent unsettled and waits for its outcome: in mode mixed go-amqp
	// sends unsettled unless told otherwise, and SendWithReceipt fails, sending nothing,
	// on a link the broker made settled.
	snd, err := sess.NewSender(actx, target, &amqp.SenderOptions{
		TargetDurability: f.u.durability,
	})
	if err != nil {
		closeSession(ctx, &link{sess: sess})
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if !f.connLost(err) {
			// amqp:not-found, amqp:unauthorized-access (RabbitMQ ends the session),
			// ...: this address waits on its own backoff.
			f.hold(target, "attach: "+readable(err).Error(), f.u.cfg.BackoffMin)
			f.u.log.Warn("address held", "target", target, "err", readable(err), "retry_in", time.Until(f.u.held.nextDueOf(target)).Round(time.Millisecond))
			return nil, errHeld
		}
		return nil, fmt.Errorf("attach sender to %q: %w", target, readable(err))
	}
	f.u.log.Debug("attached", "target", target)
	f.mu.Lock()
	f.links[target] = &link{sess: sess, snd: snd}
	f.mu.Unlock()
	return snd, nil
}

// closeSession ends l's session without waiting long: it failed already, or is
// being replaced.
func closeSession(ctx context.Context, l *link) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = l.sess.Close(cctx)
}

// dropLink ends target's session, if any; see closeSession.
func (f *forwarder) dropLink(ctx context.Context, target string) {
	f.mu.Lock()
	l, ok := f.links[target]
	delete(f.links, target)
	f.mu.Unlock()
	if ok {
		closeSession(ctx, l)
	}
}

// closeLinks ends all sessions and their links. It is called between pipelines.
func (f *forwarder) closeLinks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.u.cfg.DialTimeout)
	defer cancel()
	f.mu.Lock()
	links := f.links
	f.links = map[string]*link{}
	f.mu.Unlock()
	for target, l := range links {
		if err := l.sess.Close(ctx); err != nil && f.connLost(err) {
			return fmt.Errorf("end session of %q: %w", target, readable(err))
		}
	}
	return nil
}
