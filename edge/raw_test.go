package edge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
)

// rawPeer drives the server with literal frames, as a device stack would.
type rawPeer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func rawDial(t *testing.T, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *rawPeer) send(ch uint16, b frame.Body, payload []byte) {
	p.t.Helper()
	p.write(frame.Append(nil, frame.TypeAMQP, ch, b, payload))
}

func (p *rawPeer) readProto() [8]byte {
	p.t.Helper()
	var h [8]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		p.t.Fatalf("read protocol header: %v", err)
	}
	return h
}

// next reads frames until a non-empty one and decodes it.
func (p *rawPeer) next() (uint16, frame.Body) {
	p.t.Helper()
	for {
		h, body, err := readFrame(p.br, 1<<20)
		if err != nil {
			p.t.Fatalf("read frame: %v", err)
		}
		b, err := decodeAny(h.Type, body)
		if err != nil {
			p.t.Fatalf("decode frame from server: %v", err)
		}
		if b != nil {
			return h.Channel, b
		}
	}
}

// expectEOF checks that the server closed the socket.
func (p *rawPeer) expectEOF() {
	p.t.Helper()
	if _, err := p.br.ReadByte(); err != io.EOF {
		p.t.Fatalf("read after close = %v, want EOF", err)
	}
}

// open does the header and open exchange without SASL.
func (p *rawPeer) open(o *frame.Open) *frame.Open {
	p.t.Helper()
	p.write(frame.ProtoAMQP[:])
	if h := p.readProto(); h != frame.ProtoAMQP {
		p.t.Fatalf("server header %q", h[:])
	}
	if o == nil {
		o = &frame.Open{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 10}
	}
	p.send(0, o, nil)
	_, b := p.next()
	so, ok := b.(*frame.Open)
	if !ok {
		p.t.Fatalf("got %T, want open", b)
	}
	return so
}

func (p *rawPeer) begin(ch uint16) {
	p.t.Helper()
	p.send(ch, &frame.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}, nil)
	if _, b := p.next(); b.Code() != frame.CodeBegin {
		p.t.Fatalf("got %T, want begin", b)
	}
}

func (p *rawPeer) expectClose(cond codec.Symbol) *frame.Error {
	p.t.Helper()
	_, b := p.next()
	cl, ok := b.(*frame.Close)
	if !ok {
		p.t.Fatalf("got %T, want close", b)
	}
	if cl.Error == nil || cl.Error.Condition != cond {
		p.t.Fatalf("close error = %v, want %s", cl.Error, cond)
	}
	return cl.Error
}

// target encodes a target terminus with an address.
func target(addr string) []byte {
	var w codec.Writer
	w.Descriptor(frame.CodeTarget)
	m := w.BeginList()
	w.String(addr)
	w.EndList(m, 1)
	return w.Bytes()
}

// message encodes a minimal message: one data section.
func encMessage(body []byte) []byte {
	var w codec.Writer
	w.Descriptor(0x75)
	w.Binary(body)
	return w.Bytes()
}

func TestGarbageInsteadOfHeader(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true}, &memSink{})
	p := rawDial(t, addr)
	p.write([]byte("GET / HTTP/1.1\r\n\r\n"))
	// §2.2: the server answers with a header it supports and closes.
	if h := p.readProto(); h != frame.ProtoSASL {
		t.Fatalf("header %q, want the SASL header", h[:])
	}
	p.expectEOF()
}

func TestGarbageAfterOpen(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true}, &memSink{})
	p := rawDial(t, addr)
	p.open(nil)
	// A frame header with a data offset below 2 cannot be valid.
	p.write([]byte{0, 0, 0, 16, 1, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4})
	p.expectClose(frame.ErrFramingError)
	p.expectEOF()
}

func TestUndecodableFrame(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true}, &memSink{})
	p := rawDial(t, addr)
	p.open(nil)
	body := []byte{0x00, 0x53, 0x11, 0xd0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9} // list32 claiming 4 GiB
	p.write(append(frame.AppendHeader(nil, frame.TypeAMQP, 0, len(body)), body...))
	p.expectClose(frame.ErrDecode)
	p.expectEOF()
}

func TestFrameLargerThanMaxFrameSize(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true, MaxFrameSize: 1024}, &memSink{})
	p := rawDial(t, addr)
	so := p.open(nil)
	if so.MaxFrameSize != 1024 {
		t.Fatalf("server max-frame-size = %d, want 1024", so.MaxFrameSize)
	}
	big := make([]byte, 2000)
	binary.BigEndian.PutUint32(big, uint32(len(big)))
	big[4], big[5] = 2, 0
	p.write(big)
	e := p.expectClose(frame.ErrFramingError)
	t.Logf("close: %v", e)
	p.expectEOF()
}

func TestIdleTimeout(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true, IdleTimeout: 300 * time.Millisecond}, &memSink{})
	p := rawDial(t, addr)
	so := p.open(nil)
	if so.IdleTimeout != 300 {
		t.Fatalf("server idle-time-out = %d ms, want 300", so.IdleTimeout)
	}
	start := time.Now()
	p.expectClose(frame.ErrResourceLimitExceeded)
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %s, want about 300ms", d)
	}
}

func TestHeartbeatsSent(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true}, &memSink{})
	p := rawDial(t, addr)
	p.open(&frame.Open{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 1, IdleTimeout: 400})
	// The server must send something at least every 400 ms: expect empty frames.
	for i := 0; i < 3; i++ {
		p.nc.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
		h, body, err := readFrame(p.br, 1<<20)
		if err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		if len(body) != 0 || h.Type != frame.TypeAMQP {
			t.Fatalf("heartbeat %d: got %d body bytes", i, len(body))
		}
	}
}

func TestReceiverLinkRefused(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true}, &memSink{})
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.send(0, &frame.Attach{Name: "rx", Handle: 0, Role: frame.RoleReceiver, Source: nil, Target: target("x")}, nil)
	_, b := p.next()
	at, ok := b.(*frame.Attach)
	if !ok || at.Source != nil {
		t.Fatalf("got %#v, want attach with a null source", b)
	}
	_, b = p.next()
	d, ok := b.(*frame.Detach)
	if !ok || !d.Closed || d.Error == nil || d.Error.Condition != frame.ErrNotImplemented {
		t.Fatalf("got %#v, want closing detach with amqp:not-implemented", b)
	}
}

func TestTransferWithoutCreditDetaches(t *testing.T) {
	sink := &memSink{hold: make(chan struct{})}
	defer close(sink.hold)
	addr, _ := startServer(t, Config{AllowAnonymous: true, Credit: 2}, sink)
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.send(0, &frame.Attach{Name: "tx", Handle: 0, Role: frame.RoleSender, Target: target("t"), HasDeliveryCount: true}, nil)
	if _, b := p.next(); b.Code() != frame.CodeAttach {
		t.Fatalf("got %T, want attach", b)
	}
	_, b := p.next()
	fl, ok := b.(*frame.Flow)
	if !ok || fl.LinkCredit != 2 || fl.DeliveryCount != 0 {
		t.Fatalf("got %#v, want flow with credit 2 and delivery-count 0", b)
	}
	for i := uint32(0); i < 3; i++ {
		p.send(0, &frame.Transfer{Handle: 0, DeliveryID: i, HasDeliveryID: true, DeliveryTag: []byte{byte(i)}, HasDeliveryTag: true}, encMessage([]byte("m")))
	}
	_, b = p.next()
	d, ok := b.(*frame.Detach)
	if !ok || d.Error == nil || d.Error.Condition != frame.ErrTransferLimitExceeded {
		t.Fatalf("got %#v, want detach with transfer-limit-exceeded", b)
	}
}

func TestMalformedMessageRejected(t *testing.T) {
	sink := &memSink{}
	addr, _ := startServer(t, Config{AllowAnonymous: true}, sink)
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.send(0, &frame.Attach{Name: "tx", Handle: 0, Role: frame.RoleSender, Target: target("t"), HasDeliveryCount: true}, nil)
	p.next()
	p.next()
	p.send(0, &frame.Transfer{Handle: 0, DeliveryID: 0, HasDeliveryID: true, DeliveryTag: []byte{0}, HasDeliveryTag: true}, []byte{0x00, 0x53, 0x75, 0xa0, 0x10})
	_, b := p.next()
	d, ok := b.(*frame.Disposition)
	if !ok || !d.Settled || frame.StateCode(d.State) != frame.CodeRejected {
		t.Fatalf("got %#v, want settled rejected disposition", b)
	}
	if n := len(sink.deliveries()); n != 0 {
		t.Fatalf("sink got %d messages, want 0", n)
	}
	// The connection still works.
	p.send(0, &frame.Transfer{Handle: 0, DeliveryID: 1, HasDeliveryID: true, DeliveryTag: []byte{1}, HasDeliveryTag: true}, encMessage([]byte("ok")))
	_, b = p.next()
	if d, ok := b.(*frame.Disposition); !ok || d.First != 1 || frame.StateCode(d.State) != frame.CodeAccepted {
		t.Fatalf("got %#v, want accepted disposition for delivery 1", b)
	}
}

// decodeAny decodes frames the server sends (which a server never receives).
func decodeAny(typ byte, body []byte) (frame.Body, error) {
	if typ == frame.TypeSASL {
		return nil, nil
	}
	b, _, err := frame.Decode(typ, body)
	return b, err
}

var _ = bytes.Equal
