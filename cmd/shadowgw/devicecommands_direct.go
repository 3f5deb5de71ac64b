package main

import (
	"fmt"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/edge/message"
	"github.com/shadowgw/shadowgw/uplink"
)

// directCommands tells the edge which devices' commands take a direct route
// ([commands] direct) and opens their links upstream (uplink.DirectCommands): the
// second kind of source of the edge's sending links, beside the store's queues.
type directCommands struct {
	patterns []string
	dc       *uplink.DirectCommands // nil without an uplink: nothing ever arrives
}

// newDirectCommands returns the edge's DirectCommands for patterns, or nil if none.
func newDirectCommands(patterns []string, source string, up *uplink.Uplink) (edge.DirectCommands, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	d := &directCommands{patterns: patterns}
	if up != nil {
		if err := up.SetDirectCommands(source); err != nil {
			return nil, err
		}
		d.dc = up.DirectCommands()
	}
	return d, nil
}

// Open implements edge.DirectCommands.
func (d *directCommands) Open(device string, wake func()) edge.DirectCommandLink {
	for _, p := range d.patterns {
		if message.MatchAddress(p, device) {
			if d.dc == nil {
				return noUplinkCommands{}
			}
			return directCommandLink{d.dc.Open(device, wake)}
		}
	}
	return nil
}

// directCommandLink adapts an uplink.CommandLink to the edge: the device's outcome
// becomes the cloud's (AMQP 1.0 §3.4).
type directCommandLink struct{ l *uplink.CommandLink }

func (l directCommandLink) Read(after uint64, max int) []edge.Command {
	cs := l.l.Read(after, max)
	out := make([]edge.Command, len(cs))
	for i, c := range cs {
		out[i] = edge.Command{Seq: c.Seq, Payload: c.Payload}
	}
	return out
}

func (l directCommandLink) Credit(credit uint32, sent uint64, _ bool) { l.l.Credit(credit, sent) }
func (l directCommandLink) Settle(seq uint64, state any)              { l.l.Settle(seq, cloudState(state)) }
func (l directCommandLink) Close()                                    { l.l.Close() }

// noUplinkCommands is a direct device's link when no uplink is configured.
type noUplinkCommands struct{}

func (noUplinkCommands) Read(uint64, int) []edge.Command { return nil }
func (noUplinkCommands) Credit(uint32, uint64, bool)     {}
func (noUplinkCommands) Settle(uint64, any)              {}
func (noUplinkCommands) Close()                          {}

// cloudState is the cloud's outcome for the device's: the same outcome with the same
// fields (§3.4.2–§3.4.5); anything else is released.
func cloudState(s any) amqp.DeliveryState {
	switch s := s.(type) {
	case *frame.Accepted:
		return &amqp.StateAccepted{}
	case *frame.Rejected:
		r := &amqp.StateRejected{}
		if s.Error != nil {
			r.Error = &amqp.Error{Condition: amqp.ErrCond(s.Error.Condition), Description: s.Error.Description}
			if len(s.Error.Info) > 0 {
				r.Error.Info = errorInfo(s.Error.Info)
			}
		}
		return r
	case *frame.Modified:
		m := &amqp.StateModified{DeliveryFailed: s.DeliveryFailed, UndeliverableHere: s.UndeliverableHere}
		if len(s.MessageAnnotations) > 0 {
			m.MessageAnnotations = annotations(s.MessageAnnotations)
		}
		return m
	}
	return &amqp.StateReleased{}
}

// errorInfo and annotations convert maps the edge decoded into the ones go-amqp
// encodes; symbols stay symbols.
func errorInfo(m codec.Map) map[string]any {
	out := make(map[string]any, len(m))
	for _, p := range m {
		out[keyText(p.Key)] = goValue(p.Value)
	}
	return out
}

func annotations(m codec.Map) amqp.Annotations {
	out := make(amqp.Annotations, len(m))
	for _, p := range m {
		if s, ok := p.Key.(codec.Symbol); ok {
			out[string(s)] = goValue(p.Value)
		} else {
			out[p.Key] = goValue(p.Value)
		}
	}
	return out
}

func keyText(k any) string {
	switch k := k.(type) {
	case codec.Symbol:
		return string(k)
	case string:
		return k
	}
	return fmt.Sprint(k)
}

func goValue(v any) any {
	if s, ok := v.(codec.Symbol); ok {
		return amqp.Symbol(s)
	}
	return v
}
