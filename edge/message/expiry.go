package message

import "time"

// ExpiresAt returns when a message received at received expires: the earlier of its
// header ttl counted from received (§3.2.1) and its properties absolute-expiry-time
// (§3.2.4); the zero time if it carries neither. The producer that parsed the message
// hands this to the store, which applies a route's default time to live to messages
// without one.
func (i *Info) ExpiresAt(received time.Time) time.Time {
	var at time.Time
	if i.TTL > 0 {
		at = received.Add(i.TTL)
	}
	if !i.AbsoluteExpiryTime.IsZero() && (at.IsZero() || i.AbsoluteExpiryTime.Before(at)) {
		at = i.AbsoluteExpiryTime
	}
	return at
}

// ExpiresAt parses payload and returns its expiry as Info.ExpiresAt does; a payload
// that does not parse never expires (the zero time).
func ExpiresAt(payload []byte, received time.Time) time.Time {
	info, err := Parse(payload)
	if err != nil {
		return time.Time{}
	}
	return info.ExpiresAt(received)
}
