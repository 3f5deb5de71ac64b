package edge

import (
	"fmt"

	"github.com/shadowgw/shadowgw/edge/frame"
	"github.com/shadowgw/shadowgw/edge/message"
)

// AnonymousRelay is the capability the gateway offers in its open (a de facto standard
// of AMQP 1.0 brokers and routers): a device may attach a sender with a null target and
// name each message's destination in its properties.to, for example a reply to a
// command's reply-to. Such messages go through the store and the uplink as if sent on a
// link to that address; the same target rules apply to each.
const AnonymousRelay = "ANONYMOUS-RELAY"

// relayAddress returns the address of a message received on an anonymous-relay link,
// or "" after answering the device when it has none or may not send there.
func (s *session) relayAddress(id uint32, settled bool, info message.Info) string {
	c := s.c
	var e *frame.Error
	switch {
	case info.To == "":
		// §3.2.4: to is the node the message is destined for; a null target leaves no
		// other.
		e = frame.Errorf(frame.ErrNotFound, "a message on a link without a target names its destination in properties.to")
	case !c.srv.mayTarget(c.user, info.To):
		e = frame.Errorf(frame.ErrUnauthorizedAccess, fmt.Sprintf("device %q may not send to %q", c.source, info.To))
	default:
		return info.To
	}
	c.srv.rejected.Add(1)
	c.srv.logMalformed.Warn(c.log, "relayed message rejected", "to", info.To, "err", e)
	if !settled {
		s.acks = append(s.acks, ack{id: id, settled: true, state: &frame.Rejected{Error: e}})
	}
	return ""
}
