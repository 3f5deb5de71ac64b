// Package message is the gateway's AMQP 1.0 message model (§3.2), the layer above
// package codec that edge, uplink and hw share, each concept once: the section
// descriptors, Parse, which checks the structure of a message as it arrives from a device
// and reads the few fields the gateway acts on (Info) without re-encoding anything (the
// gateway stores and forwards the bytes the device sent), ExpiresAt, which turns those
// fields into an expiry time for the store, Made, the builder of messages the gateway
// makes itself, SourceAnnotation, and MatchAddress for address patterns.
package message

import (
	"fmt"
	"time"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// Section descriptor codes (§3.2.1–§3.2.10).
const (
	SecHeader                = 0x70
	SecDeliveryAnnotations   = 0x71
	SecMessageAnnotations    = 0x72
	SecProperties            = 0x73
	SecApplicationProperties = 0x74
	SecData                  = 0x75
	SecAMQPSequence          = 0x76
	SecAMQPValue             = 0x77
	SecFooter                = 0x78
)

// Info is what the gateway reads from a message.
type Info struct {
	Durable            bool
	Priority           uint8 // default 4 (§3.2.1)
	TTL                time.Duration
	HasMessageID       bool
	To                 string
	AbsoluteExpiryTime time.Time // zero if absent
	CreationTime       time.Time // zero if absent
}

// order gives each section its place in the sequence §3.2 prescribes; body sections
// share one place and may repeat (data and amqp-sequence) within their own kind.
func order(code uint64) int {
	switch code {
	case SecHeader:
		return 0
	case SecDeliveryAnnotations:
		return 1
	case SecMessageAnnotations:
		return 2
	case SecProperties:
		return 3
	case SecApplicationProperties:
		return 4
	case SecData, SecAMQPSequence, SecAMQPValue:
		return 5
	case SecFooter:
		return 6
	}
	return -1
}

// Parse checks that p is a sequence of message sections in the order of §3.2, each a
// well-formed described value of the right type, and returns what the gateway needs.
func Parse(p []byte) (Info, error) {
	info := Info{Priority: 4}
	r := codec.NewReader(p)
	last, body := -1, uint64(0)
	for r.Len() > 0 {
		start := r.Offset()
		code, err := r.Descriptor("section")
		if err != nil {
			return info, err
		}
		o := order(code)
		if o < 0 {
			return info, fmt.Errorf("offset %d: unknown message section descriptor 0x%x", start, code)
		}
		if o < last || (o == last && o != 5) {
			return info, fmt.Errorf("offset %d: message section 0x%x out of order (§3.2)", start, code)
		}
		if o == 5 {
			if body != 0 && (body != code || code == SecAMQPValue) {
				return info, fmt.Errorf("offset %d: body section 0x%x after 0x%x: a body is data sections, amqp-sequence sections or one amqp-value (§3.2)", start, code, body)
			}
			body = code
		}
		last = o
		if err := section(r, code, &info); err != nil {
			return info, err
		}
	}
	return info, nil
}

func section(r *codec.Reader, code uint64, info *Info) error {
	switch code {
	case SecHeader:
		f := r.Composite("header")
		info.Durable, _ = f.Bool("durable")
		if v, ok := f.Uint("priority", 255); ok {
			info.Priority = uint8(v)
		}
		if v, ok := f.Uint32("ttl"); ok {
			info.TTL = time.Duration(v) * time.Millisecond
		}
		return f.Done()
	case SecProperties:
		f := r.Composite("properties")
		info.HasMessageID = f.Value("message-id") != nil
		f.Skip() // user-id
		if rr, ok := f.Next(); ok {
			// to is an address: a string in practice, any type in principle.
			if c, _ := rr.PeekCode(); c == codec.TypeStr8 || c == codec.TypeStr32 {
				info.To, _, _ = rr.String("properties.to")
			} else if err := rr.Skip(); err != nil {
				return err
			}
		}
		for i := 0; i < 5; i++ { // subject, reply-to, correlation-id, content-type, content-encoding
			f.Skip()
		}
		if t, ok := timestamp(f, "absolute-expiry-time"); ok {
			info.AbsoluteExpiryTime = t
		}
		if t, ok := timestamp(f, "creation-time"); ok {
			info.CreationTime = t
		}
		return f.Done()
	// The sections the gateway does not read are checked without being decoded
	// (codec.Reader.Check accepts what Value accepts, and allocates nothing).
	case SecDeliveryAnnotations, SecMessageAnnotations, SecApplicationProperties, SecFooter:
		start := r.Offset()
		c, err := r.Check()
		if err != nil {
			return err
		}
		if c != codec.TypeMap8 && c != codec.TypeMap32 && c != codec.TypeNull {
			return fmt.Errorf("offset %d: section 0x%x must be a map", start, code)
		}
	case SecData:
		if _, ok, err := r.Binary("data"); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("offset %d: data section must be a binary", r.Offset())
			}
			return err
		}
	case SecAMQPSequence:
		start := r.Offset()
		c, err := r.Check()
		if err != nil {
			return err
		}
		if c != codec.TypeList0 && c != codec.TypeList8 && c != codec.TypeList32 {
			return fmt.Errorf("offset %d: amqp-sequence section must be a list", start)
		}
	case SecAMQPValue:
		_, err := r.Check()
		return err
	}
	return nil
}

func timestamp(f *codec.Fields, name string) (time.Time, bool) {
	r, ok := f.Next()
	if !ok {
		return time.Time{}, false
	}
	v, err := r.Value()
	if err != nil {
		f.Fail(name, err.Error())
		return time.Time{}, false
	}
	ts, ok := v.(codec.Timestamp)
	if !ok {
		f.Fail(name, "expected a timestamp")
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ts)), true
}
