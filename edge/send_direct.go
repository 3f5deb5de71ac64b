package edge

import (
	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
)

// DirectCommands gives a device whose commands take a direct route its commands
// straight from the cloud, the second kind of source of a sending link beside the
// store's queue (Commands): nothing is stored, each message is sent to the device
// unsettled in the order the cloud sent it, and the device's outcome is the outcome
// upstream (AMQP 1.0 §3.4), the way a link route of a router passes settlement end to
// end. Its methods must be safe for concurrent use.
type DirectCommands interface {
	// Open returns the upstream link for a command receiver of device, or nil when
	// the device's commands are stored. wake is called, from any goroutine and
	// without blocking, whenever Read may return more, until Close.
	Open(device string, wake func()) DirectCommandLink
}

// DirectCommandLink is the upstream side of one device's direct command receiver.
// The connection's owner goroutine calls its methods; they must not block.
type DirectCommandLink interface {
	// Read returns up to max messages received from the cloud with a seq above
	// after, in order; seqs start at 1 and grow by one. Messages stay readable until
	// settled.
	Read(after uint64, max int) []Command
	// Credit tells the device's link credit (§2.6.7) as it is after the gateway
	// sent every message up to seq sent: the link's upstream credit mirrors it, less
	// the messages received and not yet sent. drain is the device's drain flag.
	Credit(credit uint32, sent uint64, drain bool)
	// Settle passes the device's outcome of seq upstream: *frame.Accepted,
	// *frame.Rejected (with the device's error), *frame.Released or *frame.Modified
	// (with its fields).
	Settle(seq uint64, state any)
	// Close ends the link: what the device has not settled is released upstream and
	// the upstream receiver detached.
	Close()
}

// SetDirectCommands makes the server take the commands of the devices d opens links
// for from d instead of from the store. Call it before Serve.
func (s *Server) SetDirectCommands(d DirectCommands) { s.directCmds = d }

// DirectCommandStats are the counters of direct command links.
type DirectCommandStats struct {
	Sent                                   uint64 // deliveries sent to devices
	Accepted, Rejected, Released, Modified uint64 // the devices' outcomes, passed upstream
	InFlight                               int64  // sent, the device's outcome not yet known
}

// DirectCommandStats returns the counters of direct command links.
func (s *Server) DirectCommandStats() DirectCommandStats {
	return DirectCommandStats{Sent: s.dcSent.Load(), Accepted: s.dcAccepted.Load(), Rejected: s.dcRejected.Load(),
		Released: s.dcReleased.Load(), Modified: s.dcModified.Load(), InFlight: s.dcInFlight.Load()}
}

// directOutcome passes a device's outcome of a direct command upstream; owner only.
func (s *session) directOutcome(l *link, seq uint64, st any) {
	srv := s.c.srv
	srv.dcInFlight.Add(-1)
	switch st.(type) {
	case *frame.Accepted:
		srv.dcAccepted.Add(1)
	case *frame.Rejected:
		srv.dcRejected.Add(1)
	case *frame.Modified:
		srv.dcModified.Add(1)
	default:
		srv.dcReleased.Add(1)
	}
	l.sender.direct.Settle(seq, st)
}

// mirrorCredit tells a direct link's upstream side the device's credit; owner only.
func (l *link) mirrorCredit() {
	if sd := l.sender; sd != nil && sd.direct != nil && !l.detached() {
		sd.direct.Credit(l.credit, sd.after, sd.drain)
	}
}

// typedState turns a decoded outcome (a described list from the device) into the
// gateway's typed states (§3.4.2–§3.4.5) with their fields; nil if it is none.
func typedState(st any) any {
	l := describedList(st)
	switch frame.StateCode(st) {
	case frame.CodeAccepted:
		return &frame.Accepted{}
	case frame.CodeRejected:
		r := &frame.Rejected{}
		if len(l) > 0 {
			if e := describedList(l[0]); len(e) > 0 {
				r.Error = &frame.Error{Condition: symbol(e[0])}
				if len(e) > 1 {
					r.Error.Description, _ = e[1].(string)
				}
				if len(e) > 2 {
					r.Error.Info, _ = e[2].(codec.Map)
				}
			}
		}
		return r
	case frame.CodeReleased:
		return &frame.Released{}
	case frame.CodeModified:
		m := &frame.Modified{}
		m.DeliveryFailed, m.UndeliverableHere = modifiedFields(st)
		if len(l) > 2 {
			m.MessageAnnotations, _ = l[2].(codec.Map)
		}
		return m
	}
	return nil
}

func symbol(v any) codec.Symbol {
	switch v := v.(type) {
	case codec.Symbol:
		return v
	case string:
		return codec.Symbol(v)
	}
	return ""
}
