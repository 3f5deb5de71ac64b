package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/shadowgw/shadowgw/edge/frame"
)

// shutdownGrace is how long a connection waits, when the server stops, for deliveries
// already handed to the Sink to complete so that their acknowledgements reach the device.
const shutdownGrace = 3 * time.Second

// writeTimeout bounds one flush to a device that stopped reading.
const writeTimeout = 10 * time.Second

// inFrame is what the reader goroutine hands the owner: one decoded frame, or the error
// that ended reading.
type inFrame struct {
	channel uint16
	body    frame.Body
	payload []byte
	err     error
}

// completion is a Sink result waiting for the owner goroutine.
type completion struct {
	sess *session
	link *link
	id   uint32
	done bool // the device settled the delivery itself (pre-settled)
	size int  // payload bytes
	err  error

	direct bool // a direct link's outcome (see Direct), in state
	state  any
}

// count adds a completed delivery to the server's counters.
func (c *conn) count(cp completion) {
	if cp.direct {
		c.countDirect(cp)
		return
	}
	srv := c.srv
	switch {
	case cp.err == nil:
		srv.messages.Add(1)
		srv.bytes.Add(uint64(cp.size))
	case cp.done:
		srv.dropped.Add(1)
		srv.logDropped.Warn(c.log, "pre-settled message dropped: it could not be stored", "address", cp.link.address, "err", cp.err)
	}
}

// conn is one device connection. Fields below the mutex are owned by the owner
// goroutine (serve); the reader goroutine touches only nc, br and in.
type conn struct {
	srv    *Server
	nc     net.Conn
	id     uint64
	log    *slog.Logger
	remote string

	in   chan inFrame
	wake chan struct{}

	mu          sync.Mutex
	completions []completion
	resumed     bool         // the Sink has room again: reconsider credit on every link
	ended       bool         // the owner returned: complete counts what still arrives
	cmdWake     bool         // the Commands source has new commands (send.go)
	cmdDone     []cmdSettled // command outcomes the store finished (send.go)
	cmdSteal    []*link      // command receivers another connection took over (send_owner.go)

	spare []completion // owned by the owner: the completions slice it drained last, for reuse

	br          *bufio.Reader
	bw          *bufio.Writer
	wbuf        []byte
	maxIn       uint32        // our max-frame-size
	maxOut      uint32        // the peer's max-frame-size
	heartbeat   time.Duration // send something at least this often; 0 for never
	lastWrite   time.Time
	user        string // SASL user; "" when anonymous
	source      string // who the device is: user or container-id
	sessions    map[uint16]*session
	outstanding int  // deliveries with the Sink
	closing     bool // close sent; waiting for the peer's close or EOF
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	return &conn{
		srv:      s,
		nc:       nc,
		id:       id,
		remote:   nc.RemoteAddr().String(),
		log:      s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		in:       make(chan inFrame, 16),
		wake:     make(chan struct{}, 1),
		br:       bufio.NewReaderSize(nc, 16<<10),
		bw:       bufio.NewWriterSize(nc, 4<<10),
		maxIn:    s.cfg.MaxFrameSize,
		maxOut:   frame.MinMaxFrameSize,
		sessions: make(map[uint16]*session),
	}
}

// serve runs the connection to its end. It is the owner goroutine.
func (c *conn) serve(ctx context.Context) {
	defer c.nc.Close()
	start := time.Now()
	if err := c.handshake(); err != nil {
		if errors.Is(err, io.EOF) {
			// A port probe (health check, scanner): connected and left without a word.
			c.log.Debug("connection closed before the protocol header")
			return
		}
		if errors.Is(err, errAuth) {
			return // logged where it was decided, with the reason
		}
		c.logEnd(err, "handshake failed")
		return
	}
	c.log.Info("device connected", "source", c.source, "handshake", time.Since(start).Round(time.Millisecond))

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.readLoop()
	}()
	err := c.loop(ctx)
	for _, s := range c.sessions {
		for _, l := range s.links {
			s.closeSender(l)
		}
	}
	c.end()
	c.flush()
	// Unblock and wait for the reader: closing the socket ends its read.
	c.nc.Close()
	for range c.in {
	}
	<-readerDone
	c.logEnd(err, "device disconnected")
}

func (c *conn) logEnd(err error, msg string) {
	var pe *frame.Error
	switch {
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, errPeerClosed):
		c.log.Info(msg)
	case errors.As(err, &pe):
		c.log.Warn(msg, "err", err)
	default:
		c.log.Info(msg, "err", err)
	}
}

var errPeerClosed = errors.New("peer closed the connection")

// readFrame reads one frame of at most max bytes into a buffer of its own.
func readFrame(br *bufio.Reader, max uint32) (frame.Header, []byte, error) {
	return readFrameSlab(br, max, nil)
}

// readFrameSlab reads one frame of at most max bytes. With a slab, the frame's buffer is
// carved from it: when the slab is too small, one allocation takes every byte already
// buffered in br, so a burst of frames costs one allocation, not one each. Frames never
// share bytes (each buffer's capacity ends at its length, so an append copies), and a
// slab is dropped when br holds nothing more, so an idle connection keeps none.
func readFrameSlab(br *bufio.Reader, maxSize uint32, slab *[]byte) (frame.Header, []byte, error) {
	var hb [frame.HeaderSize]byte
	if _, err := io.ReadFull(br, hb[:]); err != nil {
		return frame.Header{}, nil, err
	}
	h, err := frame.ParseHeader(hb, maxSize)
	if err != nil {
		return h, nil, err
	}
	n := int(h.Size - frame.HeaderSize)
	var buf []byte
	if slab == nil {
		buf = make([]byte, n)
	} else {
		if len(*slab) < n {
			*slab = make([]byte, max(n, br.Buffered()))
		}
		buf, *slab = (*slab)[:n:n], (*slab)[n:]
	}
	if _, err := io.ReadFull(br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	if slab != nil && br.Buffered() == 0 {
		*slab = nil
	}
	return h, buf[int(h.DOff)*4-frame.HeaderSize:], nil
}

// readLoop decodes frames until an error, applying the idle time-out as a read deadline
// for each frame. It closes c.in when it ends.
func (c *conn) readLoop() {
	defer close(c.in)
	idle := c.srv.cfg.IdleTimeout
	var slab []byte // see readFrameSlab
	for {
		if idle > 0 {
			c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		h, body, err := readFrameSlab(c.br, c.maxIn, &slab)
		if err != nil {
			c.in <- inFrame{err: err}
			return
		}
		if h.Type != frame.TypeAMQP {
			c.in <- inFrame{err: frame.Errorf(frame.ErrFramingError, "SASL frame after the SASL exchange")}
			return
		}
		b, payload, err := frame.Decode(h.Type, body)
		if err != nil {
			c.in <- inFrame{err: frame.Errorf(frame.ErrDecode, err.Error())}
			return
		}
		if b == nil {
			continue // empty frame: keep-alive (§2.4.5)
		}
		c.in <- inFrame{channel: h.Channel, body: b, payload: payload}
	}
}

// loop is the owner's event loop.
func (c *conn) loop(ctx context.Context) error {
	var tick <-chan time.Time
	if c.heartbeat > 0 {
		t := time.NewTicker(c.heartbeat / 4)
		defer t.Stop()
		tick = t.C
	}
	done := ctx.Done()
	var grace <-chan time.Time
	for {
		if len(c.in) == 0 && !c.hasCompletions() {
			c.pumpCommands()
			c.flushAcks()
			if err := c.flush(); err != nil {
				return err
			}
		}
		select {
		case f, ok := <-c.in:
			if !ok {
				return nil
			}
			if f.err != nil {
				return c.readError(f.err)
			}
			if c.closing {
				if _, ok := f.body.(*frame.Close); ok {
					return nil
				}
				continue
			}
			if err := c.handle(f); err != nil {
				if err == errOrderlyClose {
					return nil
				}
				return c.fail(err)
			}
			if c.closing && c.outstanding == 0 && grace != nil {
				return nil
			}
		case <-c.wake:
			c.drainCompletions()
			c.drainCommands()
			if grace != nil && c.outstanding == 0 {
				c.sendClose(frame.Errorf(frame.ErrConnectionForced, "gateway shutting down"))
				return nil
			}
		case <-tick:
			if time.Since(c.lastWrite) >= c.heartbeat/2 {
				c.bw.Write(frame.Empty)
				c.lastWrite = time.Now()
			}
		case <-done:
			// Shutdown: grant no more credit and let deliveries with the Sink complete,
			// so every message stored is also acknowledged where possible.
			done = nil
			for _, s := range c.sessions {
				for _, l := range s.links {
					l.stopped = true
				}
			}
			if c.outstanding == 0 {
				c.sendClose(frame.Errorf(frame.ErrConnectionForced, "gateway shutting down"))
				return nil
			}
			grace = time.After(shutdownGrace)
		case <-grace:
			c.sendClose(frame.Errorf(frame.ErrConnectionForced, "gateway shutting down"))
			return nil
		}
	}
}

// readError turns the reader's final error into the connection's end.
func (c *conn) readError(err error) error {
	var pe *frame.Error
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return errPeerClosed
	case errors.Is(err, frame.ErrFraming):
		return c.fail(frame.Errorf(frame.ErrFramingError, err.Error()))
	case errors.As(err, &pe):
		return c.fail(pe)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		// §2.4.5: a peer that exceeds the idle time-out is closed, with an error saying why.
		return c.fail(frame.Errorf(frame.ErrResourceLimitExceeded,
			fmt.Sprintf("local-idle-timeout expired: nothing received for %s", c.srv.cfg.IdleTimeout)))
	}
	return err
}

// fail sends a close with the error, if it is an AMQP error, and returns it.
func (c *conn) fail(err error) error {
	var pe *frame.Error
	if !errors.As(err, &pe) {
		pe = frame.Errorf(frame.ErrInternal, err.Error())
	}
	c.sendClose(pe)
	return pe
}

func (c *conn) sendClose(e *frame.Error) {
	if c.closing {
		return
	}
	c.closing = true
	c.send(0, &frame.Close{Error: e}, nil)
	c.flush()
}

// send queues a frame for writing on the given channel.
func (c *conn) send(channel uint16, b frame.Body, payload []byte) {
	c.wbuf = frame.Append(c.wbuf[:0], frame.TypeAMQP, channel, b, payload)
	c.bw.Write(c.wbuf)
	c.lastWrite = time.Now()
}

func (c *conn) flush() error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.bw.Flush()
}

// handle dispatches one frame to the connection, session or link it is for.
func (c *conn) handle(f inFrame) error {
	switch b := f.body.(type) {
	case *frame.Open:
		return frame.Errorf(frame.ErrIllegalState, "second open on an open connection")
	case *frame.Close:
		// §2.4.3: answer the peer's close with ours and end.
		if b.Error != nil {
			c.log.Info("device closed the connection with an error", "err", peerText(b.Error.Error()))
		}
		c.closing = true
		c.send(0, &frame.Close{}, nil)
		c.flush()
		return errOrderlyClose
	case *frame.Begin:
		return c.onBegin(f.channel, b)
	}
	s := c.sessions[f.channel]
	if s == nil {
		return frame.Errorf(frame.ErrFramingError, fmt.Sprintf("frame on channel %d, which has no session", f.channel))
	}
	return s.handle(f)
}

// errOrderlyClose ends the loop after the peer's close was answered.
var errOrderlyClose = errors.New("closed by the device")

func (c *conn) hasCompletions() bool {
	c.mu.Lock()
	n := len(c.completions)
	c.mu.Unlock()
	return n > 0
}

// complete is called by the Sink, from any goroutine: it queues the result for the
// owner. Only after the owner has ended (a delivery the Sink completed after the
// shutdown grace) does it count the result itself, since no one else will.
func (c *conn) complete(cp completion) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		c.count(cp)
		return
	}
	c.completions = append(c.completions, cp)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// resume is called by the server, from any goroutine, when the Sink has room again.
func (c *conn) resume() {
	c.mu.Lock()
	c.resumed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) drainCompletions() {
	c.mu.Lock()
	cs, resumed := c.completions, c.resumed
	c.completions, c.resumed = c.spare, false // the two slices take turns: no growth per wake-up
	c.mu.Unlock()
	if resumed {
		for _, s := range c.sessions {
			for _, l := range s.links {
				l.wantFlow = true
			}
		}
	}
	for _, cp := range cs {
		c.outstanding--
		c.count(cp)
		cp.sess.completed(cp)
	}
	clear(cs) // no references to sessions and links kept
	c.spare = cs[:0]
}

// end marks the owner as gone and counts the results that arrived after its last look.
func (c *conn) end() {
	c.mu.Lock()
	cs := c.completions
	c.completions, c.ended = nil, true
	c.mu.Unlock()
	for _, cp := range cs {
		c.count(cp)
	}
}

// flushAcks sends the dispositions and flows that completions made due.
func (c *conn) flushAcks() {
	if c.closing {
		return
	}
	for _, s := range c.sessions {
		s.flushAcks()
	}
}
