package frame

import (
	"fmt"
	"math"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// Descriptor codes of the transport performatives (§2.7), the error type (§2.8.14),
// the delivery states (§3.4), the terminus types (§3.5) and the SASL frames (§5.3.3).
const (
	CodeOpen           = 0x10
	CodeBegin          = 0x11
	CodeAttach         = 0x12
	CodeFlow           = 0x13
	CodeTransfer       = 0x14
	CodeDisposition    = 0x15
	CodeDetach         = 0x16
	CodeEnd            = 0x17
	CodeClose          = 0x18
	CodeError          = 0x1d
	CodeReceived       = 0x23
	CodeAccepted       = 0x24
	CodeRejected       = 0x25
	CodeReleased       = 0x26
	CodeModified       = 0x27
	CodeSource         = 0x28
	CodeTarget         = 0x29
	CodeSASLMechanisms = 0x40
	CodeSASLInit       = 0x41
	CodeSASLChallenge  = 0x42
	CodeSASLResponse   = 0x43
	CodeSASLOutcome    = 0x44
)

// Body is a decoded frame body.
type Body interface {
	// Code returns the descriptor code.
	Code() uint64
	// Encode appends the body's encoding.
	Encode(w *codec.Writer)
}

// Roles (§2.8.1).
const (
	RoleSender   = false
	RoleReceiver = true
)

// Settle modes (§2.8.2, §2.8.3).
const (
	SndUnsettled uint8 = 0
	SndSettled   uint8 = 1
	SndMixed     uint8 = 2
	RcvFirst     uint8 = 0
	RcvSecond    uint8 = 1
)

// Open is the open performative (§2.7.1, descriptor 0x10).
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // default 4294967295
	ChannelMax          uint16 // default 65535
	IdleTimeout         uint32 // milliseconds; 0 means none
	OfferedCapabilities []codec.Symbol
	DesiredCapabilities []codec.Symbol
	Properties          codec.Map
}

func (*Open) Code() uint64 { return CodeOpen }

func decodeOpen(f *codec.Fields) *Open {
	o := &Open{MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}
	var ok bool
	if o.ContainerID, ok = f.String("container-id"); !ok {
		f.Fail("container-id", "mandatory field missing")
	}
	o.Hostname, _ = f.String("hostname")
	if v, ok := f.Uint32("max-frame-size"); ok {
		o.MaxFrameSize = v
	}
	if v, ok := f.Uint("channel-max", math.MaxUint16); ok {
		o.ChannelMax = uint16(v)
	}
	o.IdleTimeout, _ = f.Uint32("idle-time-out")
	f.Skip() // outgoing-locales
	f.Skip() // incoming-locales
	o.OfferedCapabilities = f.Symbols("offered-capabilities")
	o.DesiredCapabilities = f.Symbols("desired-capabilities")
	o.Properties = f.Map("properties")
	return o
}

func (o *Open) Encode(w *codec.Writer) {
	w.Descriptor(CodeOpen)
	m := w.BeginList()
	w.String(o.ContainerID)
	n := 1
	field := func(present bool, enc func()) {
		if present {
			enc()
		} else {
			w.Null()
		}
		n++
	}
	field(o.Hostname != "", func() { w.String(o.Hostname) })
	field(true, func() { w.Uint(o.MaxFrameSize) })
	field(true, func() { w.Ushort(o.ChannelMax) })
	field(o.IdleTimeout != 0, func() { w.Uint(o.IdleTimeout) })
	if len(o.OfferedCapabilities) > 0 || len(o.Properties) > 0 {
		w.Null()
		w.Null()
		w.SymbolArray(o.OfferedCapabilities)
		w.Null()
		n += 4
		if len(o.Properties) > 0 {
			_ = w.Value(o.Properties)
			n++
		}
	}
	w.EndList(m, n)
}

// Begin is the begin performative (§2.7.2, descriptor 0x11).
type Begin struct {
	RemoteChannel    uint16
	HasRemoteChannel bool
	NextOutgoingID   uint32
	IncomingWindow   uint32
	OutgoingWindow   uint32
	HandleMax        uint32 // default 4294967295
}

func (*Begin) Code() uint64 { return CodeBegin }

func decodeBegin(f *codec.Fields) *Begin {
	b := &Begin{HandleMax: math.MaxUint32}
	if v, ok := f.Uint("remote-channel", math.MaxUint16); ok {
		b.RemoteChannel, b.HasRemoteChannel = uint16(v), true
	}
	var ok1, ok2, ok3 bool
	b.NextOutgoingID, ok1 = f.Uint32("next-outgoing-id")
	b.IncomingWindow, ok2 = f.Uint32("incoming-window")
	b.OutgoingWindow, ok3 = f.Uint32("outgoing-window")
	if !ok1 || !ok2 || !ok3 {
		f.Fail("next-outgoing-id", "mandatory window fields missing")
	}
	if v, ok := f.Uint32("handle-max"); ok {
		b.HandleMax = v
	}
	return b
}

func (b *Begin) Encode(w *codec.Writer) {
	w.Descriptor(CodeBegin)
	m := w.BeginList()
	if b.HasRemoteChannel {
		w.Ushort(b.RemoteChannel)
	} else {
		w.Null()
	}
	w.Uint(b.NextOutgoingID)
	w.Uint(b.IncomingWindow)
	w.Uint(b.OutgoingWindow)
	w.Uint(b.HandleMax)
	w.EndList(m, 5)
}

// Attach is the attach performative (§2.7.3, descriptor 0x12). Source and Target are
// kept as their raw encodings (nil for null) so a reply can carry them back unchanged;
// TargetAddress and SourceAddress are decoded from them.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool
	SndSettleMode        uint8 // default mixed
	RcvSettleMode        uint8 // default first
	Source               []byte
	Target               []byte
	SourceAddress        string
	TargetAddress        string
	TargetDynamic        bool
	InitialDeliveryCount uint32
	HasDeliveryCount     bool
	MaxMessageSize       uint64 // 0 means no limit
	Properties           codec.Map
}

func (*Attach) Code() uint64 { return CodeAttach }

func decodeAttach(f *codec.Fields) *Attach {
	a := &Attach{SndSettleMode: SndMixed}
	var ok1, ok2, ok3 bool
	a.Name, ok1 = f.String("name")
	a.Handle, ok2 = f.Uint32("handle")
	a.Role, ok3 = f.Bool("role")
	if !ok1 || !ok2 || !ok3 {
		f.Fail("name", "mandatory fields name, handle and role must be present")
	}
	if v, ok := f.Uint("snd-settle-mode", 2); ok {
		a.SndSettleMode = uint8(v)
	}
	if v, ok := f.Uint("rcv-settle-mode", 1); ok {
		a.RcvSettleMode = uint8(v)
	}
	if r, ok := f.Next(); ok {
		a.Source, a.SourceAddress, _ = terminus(r, f, "source", CodeSource)
	}
	if r, ok := f.Next(); ok {
		a.Target, a.TargetAddress, a.TargetDynamic = terminus(r, f, "target", CodeTarget)
	}
	f.Skip() // unsettled: the gateway keeps no link state to resume (§2.6.13)
	f.Skip() // incomplete-unsettled
	a.InitialDeliveryCount, a.HasDeliveryCount = f.Uint32("initial-delivery-count")
	a.MaxMessageSize, _ = f.Uint("max-message-size", math.MaxUint64)
	f.Skip() // offered-capabilities
	f.Skip() // desired-capabilities
	a.Properties = f.Map("properties")
	return a
}

// terminus decodes a source (§3.5.3) or target (§3.5.4): its raw encoding, its address
// and its dynamic flag. Addresses that are not strings are kept only in the raw form.
func terminus(r *codec.Reader, f *codec.Fields, name string, code uint64) (raw []byte, addr string, dynamic bool) {
	start := r.Offset()
	d, err := r.Descriptor(name)
	if err != nil {
		f.Fail(name, err.Error())
		return nil, "", false
	}
	if d != code {
		f.Fail(name, fmt.Sprintf("descriptor 0x%x is not a %s", d, name))
		return nil, "", false
	}
	t := r.Composite(name)
	if rr, ok := t.Next(); ok {
		if c, _ := rr.PeekCode(); c == codec.TypeStr8 || c == codec.TypeStr32 {
			addr, _, err = rr.String(name + ".address")
		} else {
			err = rr.Skip()
		}
		if err != nil {
			f.Fail(name, err.Error())
			return nil, "", false
		}
	}
	t.Skip() // durable
	t.Skip() // expiry-policy
	t.Skip() // timeout
	dynamic, _ = t.Bool("dynamic")
	if err := t.Done(); err != nil {
		f.Fail(name, err.Error())
		return nil, "", false
	}
	return r.Bytes(start), addr, dynamic
}

func (a *Attach) Encode(w *codec.Writer) {
	w.Descriptor(CodeAttach)
	m := w.BeginList()
	w.String(a.Name)
	w.Uint(a.Handle)
	w.Bool(a.Role)
	w.Ubyte(a.SndSettleMode)
	w.Ubyte(a.RcvSettleMode)
	rawOrNull(w, a.Source)
	rawOrNull(w, a.Target)
	w.Null() // unsettled
	w.Null() // incomplete-unsettled
	if a.HasDeliveryCount {
		w.Uint(a.InitialDeliveryCount)
	} else {
		w.Null()
	}
	n := 10
	if a.MaxMessageSize != 0 {
		w.Ulong(a.MaxMessageSize)
		n++
	}
	w.EndList(m, n)
}

func rawOrNull(w *codec.Writer, p []byte) {
	if p == nil {
		w.Null()
	} else {
		w.Raw(p)
	}
}

// Flow is the flow performative (§2.7.4, descriptor 0x13).
type Flow struct {
	NextIncomingID    uint32
	HasNextIncomingID bool
	IncomingWindow    uint32
	NextOutgoingID    uint32
	OutgoingWindow    uint32
	Handle            uint32
	HasHandle         bool
	DeliveryCount     uint32
	HasDeliveryCount  bool
	LinkCredit        uint32
	HasLinkCredit     bool
	Available         uint32
	HasAvailable      bool
	Drain             bool
	Echo              bool
}

func (*Flow) Code() uint64 { return CodeFlow }

func decodeFlow(f *codec.Fields) *Flow {
	fl := &Flow{}
	var ok1, ok2, ok3 bool
	fl.NextIncomingID, fl.HasNextIncomingID = f.Uint32("next-incoming-id")
	fl.IncomingWindow, ok1 = f.Uint32("incoming-window")
	fl.NextOutgoingID, ok2 = f.Uint32("next-outgoing-id")
	fl.OutgoingWindow, ok3 = f.Uint32("outgoing-window")
	if !ok1 || !ok2 || !ok3 {
		f.Fail("incoming-window", "mandatory window fields missing")
	}
	fl.Handle, fl.HasHandle = f.Uint32("handle")
	fl.DeliveryCount, fl.HasDeliveryCount = f.Uint32("delivery-count")
	fl.LinkCredit, fl.HasLinkCredit = f.Uint32("link-credit")
	fl.Available, fl.HasAvailable = f.Uint32("available")
	fl.Drain, _ = f.Bool("drain")
	fl.Echo, _ = f.Bool("echo")
	return fl
}

func (fl *Flow) Encode(w *codec.Writer) {
	w.Descriptor(CodeFlow)
	m := w.BeginList()
	if fl.HasNextIncomingID {
		w.Uint(fl.NextIncomingID)
	} else {
		w.Null()
	}
	w.Uint(fl.IncomingWindow)
	w.Uint(fl.NextOutgoingID)
	w.Uint(fl.OutgoingWindow)
	n := 4
	if fl.HasHandle {
		w.Uint(fl.Handle)
		opt := func(has bool, v uint32) {
			if has {
				w.Uint(v)
			} else {
				w.Null()
			}
		}
		opt(fl.HasDeliveryCount, fl.DeliveryCount)
		opt(fl.HasLinkCredit, fl.LinkCredit)
		opt(fl.HasAvailable, fl.Available)
		w.Bool(fl.Drain)
		w.Bool(fl.Echo)
		n += 6
	} else if fl.Echo {
		w.Null()
		w.Null()
		w.Null()
		w.Null()
		w.Bool(false)
		w.Bool(true)
		n += 6
	}
	w.EndList(m, n)
}

// Transfer is the transfer performative (§2.7.5, descriptor 0x14). The message bytes
// that follow it in the frame are returned separately by Decode.
type Transfer struct {
	Handle           uint32
	DeliveryID       uint32
	HasDeliveryID    bool
	DeliveryTag      []byte // aliases the frame
	HasDeliveryTag   bool
	MessageFormat    uint32
	Settled          bool
	HasSettled       bool
	More             bool
	RcvSettleMode    uint8
	HasRcvSettleMode bool
	State            any
	Resume           bool
	Aborted          bool
	Batchable        bool
}

func (*Transfer) Code() uint64 { return CodeTransfer }

func decodeTransfer(f *codec.Fields) *Transfer {
	t := &Transfer{}
	var ok bool
	if t.Handle, ok = f.Uint32("handle"); !ok {
		f.Fail("handle", "mandatory field missing")
	}
	t.DeliveryID, t.HasDeliveryID = f.Uint32("delivery-id")
	t.DeliveryTag, t.HasDeliveryTag = f.Binary("delivery-tag")
	if len(t.DeliveryTag) > 32 {
		f.Fail("delivery-tag", "delivery-tag longer than 32 bytes (§2.8.7)")
	}
	t.MessageFormat, _ = f.Uint32("message-format")
	t.Settled, t.HasSettled = f.Bool("settled")
	t.More, _ = f.Bool("more")
	if v, ok := f.Uint("rcv-settle-mode", 1); ok {
		t.RcvSettleMode, t.HasRcvSettleMode = uint8(v), true
	}
	t.State = f.Value("state")
	t.Resume, _ = f.Bool("resume")
	t.Aborted, _ = f.Bool("aborted")
	t.Batchable, _ = f.Bool("batchable")
	return t
}

func (t *Transfer) Encode(w *codec.Writer) {
	w.Descriptor(CodeTransfer)
	m := w.BeginList()
	w.Uint(t.Handle)
	w.Uint(t.DeliveryID)
	w.Binary(t.DeliveryTag)
	w.Uint(t.MessageFormat)
	w.Bool(t.Settled)
	w.Bool(t.More)
	w.EndList(m, 6)
}

// Disposition is the disposition performative (§2.7.6, descriptor 0x15).
type Disposition struct {
	Role      bool
	First     uint32
	Last      uint32
	HasLast   bool
	Settled   bool
	State     any // a delivery state: *Accepted, *Rejected, …, or a *codec.Described
	Batchable bool
}

func (*Disposition) Code() uint64 { return CodeDisposition }

func decodeDisposition(f *codec.Fields) *Disposition {
	d := &Disposition{}
	var ok1, ok2 bool
	d.Role, ok1 = f.Bool("role")
	d.First, ok2 = f.Uint32("first")
	if !ok1 || !ok2 {
		f.Fail("role", "mandatory fields role and first must be present")
	}
	d.Last, d.HasLast = f.Uint32("last")
	d.Settled, _ = f.Bool("settled")
	d.State = f.Value("state")
	d.Batchable, _ = f.Bool("batchable")
	return d
}

func (d *Disposition) Encode(w *codec.Writer) {
	w.Descriptor(CodeDisposition)
	m := w.BeginList()
	w.Bool(d.Role)
	w.Uint(d.First)
	if d.HasLast && d.Last != d.First {
		w.Uint(d.Last)
	} else {
		w.Null()
	}
	w.Bool(d.Settled)
	n := 4
	if d.State != nil {
		encodeState(w, d.State)
		n++
	}
	w.EndList(m, n)
}

// Detach is the detach performative (§2.7.7, descriptor 0x16).
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (*Detach) Code() uint64 { return CodeDetach }

func decodeDetach(f *codec.Fields) *Detach {
	d := &Detach{}
	var ok bool
	if d.Handle, ok = f.Uint32("handle"); !ok {
		f.Fail("handle", "mandatory field missing")
	}
	d.Closed, _ = f.Bool("closed")
	d.Error = decodeErrorField(f)
	return d
}

func (d *Detach) Encode(w *codec.Writer) {
	w.Descriptor(CodeDetach)
	m := w.BeginList()
	w.Uint(d.Handle)
	w.Bool(d.Closed)
	n := 2
	if d.Error != nil {
		d.Error.Encode(w)
		n++
	}
	w.EndList(m, n)
}

// End is the end performative (§2.7.8, descriptor 0x17).
type End struct{ Error *Error }

func (*End) Code() uint64 { return CodeEnd }

func (e *End) Encode(w *codec.Writer) { encodeErrorOnly(w, CodeEnd, e.Error) }

// Close is the close performative (§2.7.9, descriptor 0x18).
type Close struct{ Error *Error }

func (*Close) Code() uint64 { return CodeClose }

func (c *Close) Encode(w *codec.Writer) { encodeErrorOnly(w, CodeClose, c.Error) }

func encodeErrorOnly(w *codec.Writer, code uint64, e *Error) {
	w.Descriptor(code)
	m := w.BeginList()
	if e == nil {
		w.EndList(m, 0)
		return
	}
	e.Encode(w)
	w.EndList(m, 1)
}
