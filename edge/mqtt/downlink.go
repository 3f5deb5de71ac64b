package mqtt

import "github.com/shadowgw/shadowgw/edge/mqtt/packet"

// Client is what a Downlink knows of a connected client.
type Client struct {
	ID      string // client identifier
	User    string // user name, "" for anonymous
	Version byte   // packet.V311 or packet.V5
}

// Downlink serves a client's subscriptions: cloud → device commands (issue 13). Its
// methods are called on the connection's owner goroutine and must not block.
//
// Subscribe returns one code per subscription, as SUBACK carries it: the granted QoS
// (0, 1 or 2) or a failure code (0x80 and above; 3.1.1 clients are sent 0x80 for any
// failure). Unsubscribe returns one MQTT 5 UNSUBACK reason code per filter. Gone tells
// that the client disconnected.
//
// Delivering commands needs an outbound path (PUBLISH to the client, PUBACK back) that
// this interface will grow when the device command queues exist.
type Downlink interface {
	Subscribe(c Client, subs []packet.Subscription) []packet.ReasonCode
	Unsubscribe(c Client, filters []string) []packet.ReasonCode
	Gone(c Client)
}

// refuseAll is the Downlink while the gateway has no device command queues: it refuses
// every subscription with 0x80 (3.1.1 §3.9.3 Failure; MQTT 5 Unspecified error: the
// filter may be valid and allowed, the server just cannot serve it) and answers every
// unsubscribe with 0x11 No subscription existed.
type refuseAll struct{}

func (refuseAll) Subscribe(_ Client, subs []packet.Subscription) []packet.ReasonCode {
	codes := make([]packet.ReasonCode, len(subs))
	for i := range codes {
		codes[i] = packet.UnspecifiedError
	}
	return codes
}

func (refuseAll) Unsubscribe(_ Client, filters []string) []packet.ReasonCode {
	codes := make([]packet.ReasonCode, len(filters))
	for i := range codes {
		codes[i] = packet.NoSubscriptionExisted
	}
	return codes
}

func (refuseAll) Gone(Client) {}
