package uplink

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	amqp "github.com/Azure/go-amqp"
)

// coalesceMax bounds the bytes a coalescingConn holds for its flusher: a writer that
// finds this many pending waits until they are written.
const coalesceMax = 64 << 10

// closeFlushTimeout bounds how long Close waits to write what is pending.
const closeFlushTimeout = time.Second

// gatherDelay is the least time between two writes below while frames keep coming:
// a frame that comes within gatherDelay of the last write waits for the rest of it,
// with the frames that follow. A frame after a quiet gatherDelay goes out at once.
// go-amqp hands over one frame per Send and each Send returns once its frame is
// buffered here, so without the wait the flusher woke for almost every frame (1.35
// transfers per TLS record were seen at 5,000 msg/s): one TLS record, one system call
// here and one read at the broker per message. It adds at most gatherDelay to a
// message's way to the cloud, and only under load; Go's timers round it up to about
// a millisecond when the process is otherwise idle.
const gatherDelay = time.Millisecond

// gatherBytes ends a gatherDelay early: as much as one TLS record holds (16 KiB).
const gatherBytes = 16 << 10

// coalescingConn is the net.Conn go-amqp runs on: it gathers the frames go-amqp
// writes one at a time (one Write per frame) and hands them to the connection below
// in as few writes as it can. Write only appends to a buffer and wakes the flusher
// goroutine; the flusher writes everything pending in one call. When the connection
// is idle a frame is written at once (the flusher is waiting for it); under load the
// frames that arrive while the flusher is in a write, or within gatherDelay of its
// last write, go out together in the next one: over TLS, many transfers per TLS
// record and per write system call.
//
// A write error of the connection below is returned by the next Write (go-amqp then
// fails the connection, and the outcomes of messages whose transfers were lost never
// come: they stay stored). Read, deadlines and addresses are those of the
// connection below. Close writes what is pending, stops the flusher, waits for it
// and closes the connection below; it is idempotent. coalescingConn is safe for
// concurrent use; go-amqp has one writer and one reader goroutine.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	flushed *sync.Cond // signalled when pending was taken or err set
	pending []byte     // written by Write, taken by the flusher
	err     error      // the first write error, or net.ErrClosed after Close
	closing bool

	wake chan struct{} // capacity 1: there is something to write, or Close was called
	// urgent (capacity 1) ends a gatherDelay: gatherBytes are pending, or Close
	// was called.
	urgent chan struct{}
	done   chan struct{} // closed when the flusher returned
	once   sync.Once
}

// newCoalescingConn wraps c and starts its flusher; Close waits for it.
func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{
		Conn:    c,
		pending: make([]byte, 0, 4<<10),
		wake:    make(chan struct{}, 1),
		urgent:  make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	cc.flushed = sync.NewCond(&cc.mu)
	go cc.flush()
	return cc
}

// Write appends p to the bytes pending; it waits only when coalesceMax bytes are
// pending already.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.pending) >= coalesceMax {
		c.flushed.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	before := len(c.pending)
	c.pending = append(c.pending, p...)
	full := before < gatherBytes && len(c.pending) >= gatherBytes
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the flusher is awake already
	}
	if full {
		select {
		case c.urgent <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// flush is the flusher goroutine: it writes what is pending until Close, then what
// is left.
func (c *coalescingConn) flush() {
	defer close(c.done)
	spare := make([]byte, 0, 4<<10)
	gather := time.NewTimer(gatherDelay)
	gather.Stop()
	var last time.Time // of the last write below
	for {
		<-c.wake
		if wait := gatherDelay - time.Since(last); wait > 0 {
			// Frames keep coming: gather the next ones for the rest of gatherDelay.
			gather.Reset(wait)
			select {
			case <-gather.C:
			case <-c.urgent:
				gather.Stop()
			}
		}
		select {
		case <-c.urgent: // taken with what is pending now
		default:
		}
		c.mu.Lock()
		out := c.pending
		c.pending = spare[:0]
		closing, failed := c.closing, c.err != nil
		c.flushed.Broadcast()
		c.mu.Unlock()
		if len(out) > 0 && !failed {
			last = time.Now()
			if _, err := c.Conn.Write(out); err != nil {
				c.mu.Lock()
				if c.err == nil {
					c.err = err
				}
				c.flushed.Broadcast()
				c.mu.Unlock()
			}
		}
		if cap(out) <= 4*coalesceMax {
			spare = out // reused: no allocation per flush
		} else {
			spare = make([]byte, 0, 4<<10)
		}
		if closing {
			return
		}
	}
}

// Close writes what is pending (for up to closeFlushTimeout), stops the flusher and
// closes the connection below.
func (c *coalescingConn) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
		select {
		case c.urgent <- struct{}{}:
		default:
		}
		// A peer that reads nothing must not hold Close up: the last write gets
		// closeFlushTimeout at most.
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		<-c.done
		c.mu.Lock()
		if c.err == nil {
			c.err = net.ErrClosed
		}
		c.flushed.Broadcast()
		c.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// dialCoalescing opens a TLS connection to addr (host:port) and an AMQP connection
// on it through a coalescingConn, with opts (whose TLSConfig is used for the TLS
// handshake, before the AMQP header: the "amqps" way, AMQP 1.0 §5.2).
func dialCoalescing(ctx context.Context, addr string, opts *amqp.ConnOptions) (*amqp.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	o := *opts
	if o.HostName == "" {
		o.HostName = host
	}
	tc := &tls.Config{}
	if o.TLSConfig != nil {
		tc = o.TLSConfig.Clone()
	}
	if tc.ServerName == "" && !tc.InsecureSkipVerify {
		tc.ServerName = host
	}
	o.TLSConfig = nil // the handshake is done here
	d := tls.Dialer{Config: tc}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cc := newCoalescingConn(nc)
	conn, err := amqp.NewConn(ctx, cc, &o)
	if err != nil {
		_ = cc.Close() // go-amqp may have closed it already; Close is idempotent
		return nil, err
	}
	return conn, nil
}
