package main

import (
	"fmt"
	"log/slog"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/codec"
	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink"
)

// directRoutes tells the edge which addresses take a direct route ([route] mode =
// direct) and hands their deliveries to the uplink's direct forwarder. An address takes
// the route the store would put it on (the longest pattern wins, stored and direct
// routes alike); the store keeps an empty queue for a direct route and nothing more.
type directRoutes struct {
	st     *store.Store
	names  map[string]bool // the direct routes
	direct *uplink.Direct  // nil without an uplink: direct routes never get credit
}

// newDirectRoutes returns the edge's Direct for cfg, or nil if no route is direct.
func newDirectRoutes(cfg config.Config, st *store.Store, up *uplink.Uplink, log *slog.Logger) edge.Direct {
	d := &directRoutes{st: st, names: map[string]bool{}}
	if up != nil {
		d.direct = up.Direct()
	}
	for _, r := range cfg.Routes {
		if r.Direct() {
			d.names[r.Name] = true
			if d.direct != nil {
				d.direct.AddRoute(r.Name)
			}
		}
	}
	if len(d.names) == 0 {
		return nil
	}
	if up == nil {
		log.Warn("direct routes without an uplink: devices sending to them get no credit")
	}
	return d
}

// Target implements edge.Direct.
func (d *directRoutes) Target(address, source string) edge.DirectTarget {
	route := d.st.RouteOf(address)
	if !d.names[route] {
		return nil
	}
	if d.direct == nil {
		return noUplink{}
	}
	return directTarget{d.direct.Target(route, address, source)}
}

// Changed implements edge.Direct.
func (d *directRoutes) Changed() (<-chan struct{}, func()) {
	if d.direct == nil {
		return nil, func() {}
	}
	return d.direct.Changed()
}

// directTarget adapts an uplink.DirectTarget to the edge: the cloud's outcome becomes
// the device's (AMQP 1.0 §3.4).
type directTarget struct{ t *uplink.DirectTarget }

func (t directTarget) Ready() bool { return t.t.Ready() }
func (t directTarget) Release()    { t.t.Release() }

func (t directTarget) Forward(d *edge.Delivery, settled bool, done func(any)) {
	t.t.Forward(d.Payload, d.Source, d.Received, settled, func(s amqp.DeliveryState) { done(deviceState(s)) })
}

// noUplink is the target of a direct route when no uplink is configured.
type noUplink struct{}

func (noUplink) Ready() bool { return false }
func (noUplink) Forward(_ *edge.Delivery, _ bool, done func(any)) {
	done(&frame.Released{})
}

// deviceState is the device's outcome for the cloud's: the same outcome with the same
// fields (§3.4.2–§3.4.5); anything else (a state that is no outcome) is released.
func deviceState(s amqp.DeliveryState) any {
	switch s := s.(type) {
	case *amqp.StateAccepted:
		return &frame.Accepted{}
	case *amqp.StateRejected:
		r := &frame.Rejected{}
		if s.Error != nil {
			r.Error = &frame.Error{Condition: codec.Symbol(s.Error.Condition), Description: s.Error.Description}
			if len(s.Error.Info) > 0 {
				r.Error.Info = wireMap(s.Error.Info)
			}
		}
		return r
	case *amqp.StateModified:
		m := &frame.Modified{DeliveryFailed: s.DeliveryFailed, UndeliverableHere: s.UndeliverableHere}
		if len(s.MessageAnnotations) > 0 {
			m.MessageAnnotations = wireMap(s.MessageAnnotations)
		}
		return m
	}
	return &frame.Released{}
}

// wireMap converts a map go-amqp decoded into the edge codec's; keys are symbols
// (fields, annotations), values of a type the codec does not write become text.
func wireMap[K comparable](m map[K]any) codec.Map {
	out := make(codec.Map, 0, len(m))
	for k, v := range m {
		out = append(out, codec.Pair{Key: codec.Symbol(fmt.Sprint(k)), Value: wireValue(v)})
	}
	return out
}

func wireValue(v any) any {
	switch v := v.(type) {
	case nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32, float64, []byte, string:
		return v
	case amqp.Symbol:
		return codec.Symbol(v)
	}
	return fmt.Sprint(v)
}
