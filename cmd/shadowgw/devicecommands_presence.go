package main

import (
	"log/slog"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/store"
)

// Presence events ([commands] presence): when a device's command receiver attaches or
// goes away, a small message tells the cloud, in Eclipse Hono's convention: the
// application property ttd (time until disconnect) is -1 while the device can receive
// commands and 0 once it cannot, device_id names the device, the content-type is
// Hono's empty notification and creation-time says when.
//
// They go through the store like the device's own messages: ordered with them, kept
// through an outage, and with a short expiry ([commands] presence-ttl) so that a
// "connected" that waited out a long outage is dropped instead of delivered late.

// PresenceContentType is Eclipse Hono's content type of an empty notification.
const PresenceContentType = "application/vnd.eclipse-hono-empty-notification"

// presence stores the events.
type presence struct {
	st      *store.Store
	address string
	ttl     time.Duration
	log     *slog.Logger
}

// newPresence returns the edge's presence hook, nil when address is empty.
func newPresence(st *store.Store, address string, ttl time.Duration, log *slog.Logger) func(device string, up bool) {
	if address == "" {
		return nil
	}
	p := &presence{st: st, address: address, ttl: ttl, log: log}
	return p.event
}

// event stores one event; called on a connection's goroutine, it does not block.
func (p *presence) event(device string, up bool) {
	now := time.Now()
	ttd := int32(0)
	if up {
		ttd = -1
	}
	ct := PresenceContentType
	m := amqp.NewMessage([]byte{})
	m.Header = &amqp.MessageHeader{Durable: true, Priority: 4, TTL: p.ttl} // priority: the default (§3.2.1)
	m.Properties = &amqp.MessageProperties{
		ContentType:  &ct,
		CreationTime: &now,
	}
	m.ApplicationProperties = map[string]any{"ttd": ttd, "device_id": device}
	payload, err := m.MarshalBinary()
	if err != nil {
		p.log.Warn("presence event not encoded", "device", device, "err", err)
		return
	}
	p.st.AppendAsync(&store.Message{Address: p.address, Source: device, Received: now, Payload: payload,
		Expires: now.Add(p.ttl)}, func(err error) {
		if err != nil {
			p.log.Warn("presence event not stored", "device", device, "connected", up, "err", err)
		}
	})
}
