package edge

import (
	"bufio"
	"bytes"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
)

// Conformance tests: each drives the server with literal frames and checks the frames it
// answers with against AMQP 1.0 part 2 ("Transport").

func (p *rawPeer) attachSender(ch uint16, name string, handle uint32, addr string) (*frame.Attach, *frame.Flow) {
	p.t.Helper()
	p.send(ch, &frame.Attach{Name: name, Handle: handle, Role: frame.RoleSender, Target: target(addr), HasDeliveryCount: true}, nil)
	_, b := p.next()
	at, ok := b.(*frame.Attach)
	if !ok {
		p.t.Fatalf("got %#v, want attach", b)
	}
	_, b = p.next()
	fl, ok := b.(*frame.Flow)
	if !ok {
		p.t.Fatalf("got %#v, want flow", b)
	}
	return at, fl
}

func (p *rawPeer) transfer(ch uint16, handle, id uint32, settled bool, body string) {
	p.t.Helper()
	p.send(ch, &frame.Transfer{Handle: handle, DeliveryID: id, HasDeliveryID: true, DeliveryTag: []byte{byte(id)},
		HasDeliveryTag: true, Settled: settled}, encMessage([]byte(body)))
}

// expect reads the next frame and checks its type and channel.
func expect[T frame.Body](p *rawPeer, ch uint16) T {
	p.t.Helper()
	gotCh, b := p.next()
	v, ok := b.(T)
	if !ok {
		var zero T
		p.t.Fatalf("got %#v, want %T", b, zero)
	}
	if gotCh != ch {
		p.t.Fatalf("%T on channel %d, want %d", b, gotCh, ch)
	}
	return v
}

func startRaw(t *testing.T, cfg Config, sink *memSink) *rawPeer {
	t.Helper()
	cfg.AllowAnonymous = true
	addr, _ := startServer(t, cfg, sink)
	p := rawDial(t, addr)
	p.open(nil)
	return p
}

// §2.7.3: the receiver's attach carries both the device's source and the target.
func TestAttachReplyCarriesTermini(t *testing.T) {
	p := startRaw(t, Config{MaxMessageSize: 5000, Credit: 7}, &memSink{})
	p.begin(0)
	var w codec.Writer
	w.Descriptor(frame.CodeSource)
	m := w.BeginList()
	w.String("device-src")
	w.EndList(m, 1)
	p.send(0, &frame.Attach{Name: "l", Handle: 3, Role: frame.RoleSender, Source: w.Bytes(), Target: target("t"),
		RcvSettleMode: frame.RcvSecond, HasDeliveryCount: true, InitialDeliveryCount: 41}, nil)
	at := expect[*frame.Attach](p, 0)
	if at.Role != frame.RoleReceiver || at.SourceAddress != "device-src" || at.TargetAddress != "t" || at.Handle != 3 {
		t.Fatalf("attach reply %+v: want receiver role, source device-src, target t, handle 3", at)
	}
	// §2.7.3: the receiver's rcv-settle-mode is the mode in use: first, whatever the
	// device asked (second here).
	if at.MaxMessageSize != 5000 || at.RcvSettleMode != frame.RcvFirst {
		t.Fatalf("attach reply max-message-size %d rcv-settle-mode %d, want 5000 and first", at.MaxMessageSize, at.RcvSettleMode)
	}
	fl := expect[*frame.Flow](p, 0)
	if fl.DeliveryCount != 41 || fl.LinkCredit != 7 || !fl.HasHandle || fl.Handle != 3 {
		t.Fatalf("flow %+v: want delivery-count 41 (the sender's initial), credit 7, handle 3", fl)
	}
}

// §2.5, §2.6: several sessions per connection, several links per session; dispositions
// go to the session that carried the transfer; delivery-count in every flow advances.
func TestSessionsAndLinks(t *testing.T) {
	sink := &memSink{}
	p := startRaw(t, Config{Credit: 4}, sink)
	p.begin(0)
	p.begin(1)
	p.attachSender(0, "a", 0, "x")
	p.attachSender(0, "b", 1, "y")
	p.attachSender(1, "a2", 0, "z")
	p.transfer(0, 0, 0, false, "0-x")
	p.transfer(1, 0, 0, false, "1-z")
	p.transfer(0, 1, 1, false, "0-y")
	got := map[uint16][]uint32{}
	for len(got[0])+len(got[1]) < 3 {
		ch, b := p.next()
		switch b := b.(type) {
		case *frame.Disposition:
			if frame.StateCode(b.State) != frame.CodeAccepted || !b.Settled {
				t.Fatalf("disposition %+v, want settled accepted", b)
			}
			last := b.First
			if b.HasLast {
				last = b.Last
			}
			for id := b.First; id <= last; id++ {
				got[ch] = append(got[ch], id)
			}
		case *frame.Flow:
			if b.HasHandle && b.DeliveryCount != 1 {
				t.Errorf("flow on channel %d handle %d: delivery-count %d, want 1 after one transfer", ch, b.Handle, b.DeliveryCount)
			}
		default:
			t.Fatalf("unexpected %T", b)
		}
	}
	if len(got[0]) != 2 || len(got[1]) != 1 || got[1][0] != 0 {
		t.Fatalf("dispositions by channel %v, want two on 0 and delivery 0 on 1", got)
	}
	addrs := map[string]bool{}
	for _, d := range sink.deliveries() {
		addrs[d.Address] = true
	}
	if len(addrs) != 3 {
		t.Fatalf("addresses stored %v, want x, y and z", addrs)
	}
}

// §2.7.6: completions the owner sees together are acknowledged with one disposition per
// run of consecutive delivery-ids, whatever order they completed in.
func TestBatchedDisposition(t *testing.T) {
	s, out := bareSession(t)
	l := &link{receiver: receiver{window: 10}}
	for _, id := range []uint32{3, 1, 0, 2, 4, 7} {
		l.outstanding++
		s.completed(completion{sess: s, link: l, id: id})
	}
	s.flushAcks()
	var got [][2]uint32
	for _, b := range sent(t, s, out) {
		if d, ok := b.(*frame.Disposition); ok {
			last := d.First
			if d.HasLast {
				last = d.Last
			}
			got = append(got, [2]uint32{d.First, last})
		}
	}
	if want := [][2]uint32{{0, 4}, {7, 7}}; !slices.Equal(got, want) {
		t.Fatalf("dispositions %v, want %v", got, want)
	}
}

// §2.7.3: the receiver's rcv-settle-mode in its attach is the mode in use; the sender's
// is only a wish. A device that asks for second (uAMQP-C does by default) gets first,
// and each outcome settled at once (§2.6.12), which every client stack completes on; a
// settled disposition the device sends anyway is harmless.
func TestSettleModeSecondAnsweredFirst(t *testing.T) {
	sink := &memSink{}
	addr, srv := startServer(t, Config{AllowAnonymous: true}, sink)
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	p.send(0, &frame.Attach{Name: "l", Handle: 0, Role: frame.RoleSender, Target: target("x"),
		RcvSettleMode: frame.RcvSecond, HasDeliveryCount: true}, nil)
	if at := expect[*frame.Attach](p, 0); at.RcvSettleMode != frame.RcvFirst {
		t.Fatalf("attach reply rcv-settle-mode %d, want first (%d)", at.RcvSettleMode, frame.RcvFirst)
	}
	expect[*frame.Flow](p, 0)
	p.transfer(0, 0, 0, false, "m")
	d := expect[*frame.Disposition](p, 0)
	if !d.Settled || frame.StateCode(d.State) != frame.CodeAccepted {
		t.Fatalf("disposition %+v: want accepted and settled", d)
	}
	p.send(0, &frame.Disposition{Role: frame.RoleSender, First: 0, Settled: true, State: &frame.Accepted{}}, nil)
	// The connection is still healthy, and the store has the message once.
	p.transfer(0, 0, 1, true, "presettled")
	checkFor(t, 5*time.Second, func() bool { return srv.Stats().Messages == 2 })
	if n := len(sink.deliveries()); n != 2 {
		t.Fatalf("stored %d messages, want 2", n)
	}
}

// §2.7.7: a detach without closed is answered in kind; the link can be attached again
// under the same name.
func TestDetachAndReattach(t *testing.T) {
	p := startRaw(t, Config{}, &memSink{})
	p.begin(0)
	p.attachSender(0, "l", 0, "x")
	p.send(0, &frame.Detach{Handle: 0, Closed: false}, nil)
	if d := expect[*frame.Detach](p, 0); d.Closed || d.Error != nil {
		t.Fatalf("detach reply %+v, want closed=false without error", d)
	}
	p.attachSender(0, "l", 0, "x")
	p.send(0, &frame.Detach{Handle: 0, Closed: true}, nil)
	if d := expect[*frame.Detach](p, 0); !d.Closed {
		t.Fatalf("detach reply %+v, want closed=true", d)
	}
}

// §2.6.1: attaching a link name that is attached already steals it.
func TestLinkStolen(t *testing.T) {
	p := startRaw(t, Config{}, &memSink{})
	p.begin(0)
	p.attachSender(0, "same", 0, "x")
	p.send(0, &frame.Attach{Name: "same", Handle: 1, Role: frame.RoleSender, Target: target("x"), HasDeliveryCount: true}, nil)
	d := expect[*frame.Detach](p, 0)
	if d.Handle != 0 || d.Error == nil || d.Error.Condition != frame.ErrLinkStolen {
		t.Fatalf("got %+v, want detach of handle 0 with amqp:link:stolen", d)
	}
	if at := expect[*frame.Attach](p, 0); at.Handle != 1 {
		t.Fatalf("attach reply for handle %d, want 1", at.Handle)
	}
}

// §2.6.7: the sender's delivery-count is authoritative: credit it consumed (e.g. by a
// drain) is gone, and an echo request is answered with the link state.
func TestSenderFlowDeliveryCount(t *testing.T) {
	p := startRaw(t, Config{Credit: 10}, &memSink{})
	p.begin(0)
	p.attachSender(0, "l", 0, "x")
	p.send(0, &frame.Flow{IncomingWindow: 100, NextOutgoingID: 0, OutgoingWindow: 100, Handle: 0, HasHandle: true,
		DeliveryCount: 10, HasDeliveryCount: true, LinkCredit: 0, HasLinkCredit: true, Drain: true, Echo: true}, nil)
	fl := expect[*frame.Flow](p, 0)
	if fl.DeliveryCount != 10 || fl.LinkCredit != 0 {
		t.Fatalf("echoed flow delivery-count %d credit %d, want 10 and 0 after the sender drained", fl.DeliveryCount, fl.LinkCredit)
	}
}

func TestSessionErrors(t *testing.T) {
	cases := []struct {
		name string
		run  func(p *rawPeer)
		want codec.Symbol
	}{
		{"transfer on an unattached handle", func(p *rawPeer) { p.transfer(0, 9, 0, false, "m") }, frame.ErrUnattachedHandle},
		{"attach on a handle in use", func(p *rawPeer) {
			p.attachSender(0, "a", 0, "x")
			p.send(0, &frame.Attach{Name: "b", Handle: 0, Role: frame.RoleSender, Target: target("x"), HasDeliveryCount: true}, nil)
		}, frame.ErrHandleInUse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startRaw(t, Config{}, &memSink{})
			p.begin(0)
			tc.run(p)
			e := expect[*frame.End](p, 0)
			if e.Error == nil || e.Error.Condition != tc.want {
				t.Fatalf("end error %v, want %s", e.Error, tc.want)
			}
			// §2.5.5: the session ends; the connection lives on.
			p.begin(1)
		})
	}
}

// §2.5.6: a transfer beyond the incoming-window ends the session. Over a socket the
// server reopens its window as it consumes frames, so the rule is tested on a session.
func TestWindowViolation(t *testing.T) {
	s, out := bareSession(t)
	s.inWindow = 0
	if err := s.onTransfer(&frame.Transfer{Handle: 0, DeliveryID: 0, HasDeliveryID: true}, encMessage([]byte("m"))); err != nil {
		t.Fatal(err)
	}
	frames := sent(t, s, out)
	if end, ok := frames[0].(*frame.End); !ok || end.Error == nil || end.Error.Condition != frame.ErrWindowViolation {
		t.Fatalf("got %#v, want end with %s", frames[0], frame.ErrWindowViolation)
	}
	if s.state != sessionEnding {
		t.Fatal("session not ending after a window violation")
	}
}

func TestConnectionErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		run  func(p *rawPeer)
		want codec.Symbol
	}{
		{"channel beyond channel-max", Config{MaxSessions: 3}, func(p *rawPeer) {
			p.send(3, &frame.Begin{IncomingWindow: 1, OutgoingWindow: 1}, nil)
		}, frame.ErrFramingError},
		{"handle beyond handle-max", Config{MaxLinks: 5}, func(p *rawPeer) {
			p.begin(0)
			p.send(0, &frame.Attach{Name: "x", Handle: 5, Role: frame.RoleSender, Target: target("x"), HasDeliveryCount: true}, nil)
		}, frame.ErrFramingError},
		{"frame on a channel without a session", Config{}, func(p *rawPeer) {
			p.send(4, &frame.Flow{IncomingWindow: 1, OutgoingWindow: 1}, nil)
		}, frame.ErrFramingError},
		{"second open", Config{}, func(p *rawPeer) {
			p.send(0, &frame.Open{ContainerID: "again", MaxFrameSize: 512}, nil)
		}, frame.ErrIllegalState},
		{"unknown performative", Config{}, func(p *rawPeer) {
			body := []byte{0x00, 0x53, 0x33, 0x45}
			p.write(append(frame.AppendHeader(nil, frame.TypeAMQP, 0, len(body)), body...))
		}, frame.ErrDecode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startRaw(t, tc.cfg, &memSink{})
			tc.run(p)
			e := p.expectClose(tc.want)
			t.Logf("close: %v", e)
			p.expectEOF()
		})
	}
}

// slowConn writes one byte at a time, so every frame arrives split at every offset.
type slowConn struct{ net.Conn }

func (c slowConn) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}

// The server must assemble headers and frames from any split of the byte stream.
func TestByteAtATime(t *testing.T) {
	sink := &memSink{}
	addr, _ := startServer(t, Config{AllowAnonymous: true}, sink)
	p := rawDial(t, addr)
	p.nc = slowConn{p.nc}
	p.open(nil)
	p.begin(0)
	p.attachSender(0, "l", 0, "x")
	p.transfer(0, 0, 0, false, "split")
	if d := expect[*frame.Disposition](p, 0); frame.StateCode(d.State) != frame.CodeAccepted {
		t.Fatalf("disposition %+v, want accepted", d)
	}
}

// The handshake must finish within HandshakeTimeout: a client that connects and says
// nothing, or trickles the header, is dropped.
func TestHandshakeTimeout(t *testing.T) {
	addr, _ := startServer(t, Config{AllowAnonymous: true, HandshakeTimeout: 200 * time.Millisecond}, &memSink{})
	p := rawDial(t, addr)
	p.write([]byte("AM"))
	start := time.Now()
	p.expectEOF()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dropped after %v, want about 200ms", d)
	}
}

// A connection above the limits is refused; the others are unaffected.
func TestConnectionLimits(t *testing.T) {
	addr, srv := startServer(t, Config{AllowAnonymous: true, MaxConnections: 2}, &memSink{})
	a, b := rawDial(t, addr), rawDial(t, addr)
	a.open(nil)
	b.open(nil)
	c := rawDial(t, addr)
	c.expectEOF()
	if srv.Stats().Refused != 1 {
		t.Fatalf("refused = %d, want 1", srv.Stats().Refused)
	}
	a.begin(0)
}

// fullSink is a memSink whose Full can be switched, for every address but "free".
type fullSink struct {
	memSink
	full atomic.Bool
	room chan struct{}
}

func (s *fullSink) Full(address string) bool { return address != "free" && s.full.Load() }

func (s *fullSink) Room() (<-chan struct{}, func()) { return s.room, func() {} }

// setFull switches Full, signalling Room when it turns false.
func (s *fullSink) setFull(full bool) {
	s.full.Store(full)
	if !full {
		select {
		case s.room <- struct{}{}:
		default:
		}
	}
}

// Backpressure: while the Sink is full for an address, devices get no credit on links to
// it (and nothing is lost or rejected) while links to other addresses get theirs; once
// it has room, credit comes without the device asking.
func TestBackpressureWhenFull(t *testing.T) {
	sink := &fullSink{room: make(chan struct{}, 1)}
	sink.setFull(true)
	addr, srv := startServer(t, Config{AllowAnonymous: true, Credit: 4}, sink)
	p := rawDial(t, addr)
	p.open(nil)
	p.begin(0)
	_, fl := p.attachSender(0, "l", 0, "x")
	if fl.LinkCredit != 0 {
		t.Fatalf("initial credit %d while the store is full, want 0", fl.LinkCredit)
	}
	// Another address with room (another route of the store) is not held up.
	if _, fl := p.attachSender(0, "free", 1, "free"); fl.LinkCredit != 4 {
		t.Fatalf("credit %d on a link to an address with room, want 4", fl.LinkCredit)
	}
	p.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if h, body, err := readFrame(p.br, 1<<20); err == nil {
		t.Fatalf("got a frame (%v, %d bytes) while the store is full, want none", h, len(body))
	}
	p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	sink.setFull(false)
	start := time.Now()
	fl = expect[*frame.Flow](p, 0)
	if fl.LinkCredit != 4 {
		t.Fatalf("credit %d after the store has room, want 4", fl.LinkCredit)
	}
	t.Logf("credit granted %v after the store had room", time.Since(start).Round(time.Millisecond))
	for i := uint32(0); i < 4; i++ {
		p.transfer(0, 0, i, false, "m")
	}
	checkFor(t, 5*time.Second, func() bool { return srv.Stats().Messages == 4 })
	if st := srv.Stats(); st.Rejected != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v: nothing may be rejected or dropped", st)
	}
}

// bareSession returns a session begun on a connection whose frames go to the returned
// buffer instead of a peer, for rules that cannot be provoked reliably over a socket.
func bareSession(t *testing.T) (*session, *bytes.Buffer) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := newConn(New(Config{}, &memSink{}, nil), a, 1)
	out := &bytes.Buffer{}
	c.bw = bufio.NewWriter(out)
	if err := c.onBegin(0, &frame.Begin{IncomingWindow: 10, OutgoingWindow: 10}); err != nil {
		t.Fatal(err)
	}
	return c.sessions[0], out
}

// sent flushes the session's connection and decodes what it wrote after the begin.
func sent(t *testing.T, s *session, out *bytes.Buffer) []frame.Body {
	t.Helper()
	if err := s.c.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	var bodies []frame.Body
	for {
		_, body, err := readFrame(br, 1<<20)
		if err != nil {
			break
		}
		b, _, err := frame.Decode(frame.TypeAMQP, body)
		if err != nil {
			t.Fatal(err)
		}
		if b.Code() != frame.CodeBegin {
			bodies = append(bodies, b)
		}
	}
	if len(bodies) == 0 {
		t.Fatal("the session wrote nothing")
	}
	return bodies
}
