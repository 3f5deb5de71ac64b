package frame

import "github.com/shadowgw/shadowgw/edge/codec"

// Accepted is the accepted outcome (§3.4.2, descriptor 0x24).
type Accepted struct{}

// Rejected is the rejected outcome (§3.4.3, descriptor 0x25).
type Rejected struct{ Error *Error }

// Released is the released outcome (§3.4.4, descriptor 0x26).
type Released struct{}

// Modified is the modified outcome (§3.4.5, descriptor 0x27).
type Modified struct {
	DeliveryFailed    bool
	UndeliverableHere bool
	// MessageAnnotations are to be merged into the message's (a far end's outcome
	// passed on by a direct route); nil: none.
	MessageAnnotations codec.Map
}

// encodeState appends a delivery state the gateway produces.
func encodeState(w *codec.Writer, s any) {
	switch s := s.(type) {
	case *Accepted:
		w.Descriptor(CodeAccepted)
		w.EndList(w.BeginList(), 0)
	case *Released:
		w.Descriptor(CodeReleased)
		w.EndList(w.BeginList(), 0)
	case *Rejected:
		w.Descriptor(CodeRejected)
		m := w.BeginList()
		if s.Error != nil {
			s.Error.Encode(w)
			w.EndList(m, 1)
		} else {
			w.EndList(m, 0)
		}
	case *Modified:
		w.Descriptor(CodeModified)
		m := w.BeginList()
		w.Bool(s.DeliveryFailed)
		w.Bool(s.UndeliverableHere)
		if s.MessageAnnotations == nil {
			w.EndList(m, 2)
			break
		}
		_ = w.Value(s.MessageAnnotations)
		w.EndList(m, 3)
	default:
		_ = w.Value(s)
	}
}

// StateCode returns the descriptor code of a decoded delivery state (as found in a
// disposition or transfer from a peer), or 0 if there is none.
func StateCode(s any) uint64 {
	if d, ok := s.(*codec.Described); ok {
		if c, ok := d.Descriptor.(uint64); ok {
			return c
		}
	}
	return 0
}
