package packet

import "encoding/binary"

// frame appends the fixed header (type, flags, Remaining Length) and body to b.
func frame(b []byte, t Type, flags byte, body []byte) []byte {
	b = append(b, byte(t)<<4|flags)
	b = appendVarint(b, uint32(len(body)))
	return append(b, body...)
}

// Append appends the CONNECT's encoding; the version is c.Version.
func (c *Connect) Append(b []byte, _ byte) []byte {
	name := c.ProtocolName
	if name == "" {
		name = "MQTT"
	}
	body := appendString(nil, name)
	body = append(body, c.Version)
	var f byte
	if c.CleanStart {
		f |= 0x02
	}
	if c.Will != nil {
		f |= 0x04 | c.Will.QoS<<3
		if c.Will.Retain {
			f |= 0x20
		}
	}
	if c.HasPassword {
		f |= 0x40
	}
	if c.HasUser {
		f |= 0x80
	}
	body = append(body, f)
	body = binary.BigEndian.AppendUint16(body, c.KeepAlive)
	if c.Version == V5 {
		body = appendProps(body, &c.Props)
	}
	body = appendString(body, c.ClientID)
	if c.Will != nil {
		if c.Version == V5 {
			body = appendProps(body, &c.Will.Props)
		}
		body = appendString(body, c.Will.Topic)
		body = appendBinary(body, c.Will.Payload)
	}
	if c.HasUser {
		body = appendString(body, c.User)
	}
	if c.HasPassword {
		body = appendBinary(body, c.Password)
	}
	return frame(b, CONNECT, 0, body)
}

// Append appends the CONNACK's encoding.
func (c *Connack) Append(b []byte, version byte) []byte {
	var f byte
	if c.SessionPresent {
		f = 1
	}
	body := []byte{f, byte(c.Code)}
	if version == V5 {
		body = appendProps(body, &c.Props)
	}
	return frame(b, CONNACK, 0, body)
}

// Append appends the PUBLISH's encoding.
func (p *Publish) Append(b []byte, version byte) []byte {
	flags := p.QoS << 1
	if p.Dup {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 1
	}
	body := appendString(nil, p.Topic)
	if p.QoS > 0 {
		body = binary.BigEndian.AppendUint16(body, p.ID)
	}
	if version == V5 {
		body = appendProps(body, &p.Props)
	}
	body = append(body, p.Payload...)
	return frame(b, PUBLISH, flags, body)
}

// Append appends the acknowledgement's encoding. In MQTT 5 the reason code and the
// properties are left out when they are Success and empty (5.0 §3.4.2.1).
func (a *Ack) Append(b []byte, version byte) []byte {
	var flags byte
	if a.Kind == PUBREL {
		flags = 2
	}
	b = append(b, byte(a.Kind)<<4|flags)
	if version != V5 || (a.Code == Success && a.Props.Set == 0 && len(a.Props.User) == 0) {
		b = append(b, 2)
		return binary.BigEndian.AppendUint16(b, a.ID)
	}
	body := binary.BigEndian.AppendUint16(nil, a.ID)
	body = append(body, byte(a.Code))
	if a.Props.Set != 0 || len(a.Props.User) > 0 {
		body = appendProps(body, &a.Props)
	}
	b = appendVarint(b, uint32(len(body)))
	return append(b, body...)
}

// Append appends the SUBSCRIBE's encoding.
func (s *Subscribe) Append(b []byte, version byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, s.ID)
	if version == V5 {
		body = appendProps(body, &s.Props)
	}
	for _, sub := range s.Subs {
		body = appendString(body, sub.Filter)
		o := sub.QoS
		if version == V5 {
			if sub.NoLocal {
				o |= 0x04
			}
			if sub.RetainAsPublished {
				o |= 0x08
			}
			o |= sub.RetainHandling << 4
		}
		body = append(body, o)
	}
	return frame(b, SUBSCRIBE, 2, body)
}

// Append appends the SUBACK's encoding.
func (s *Suback) Append(b []byte, version byte) []byte {
	return frame(b, SUBACK, 0, appendAckBody(s.ID, &s.Props, s.Codes, version))
}

// Append appends the UNSUBSCRIBE's encoding.
func (u *Unsubscribe) Append(b []byte, version byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, u.ID)
	if version == V5 {
		body = appendProps(body, &u.Props)
	}
	for _, f := range u.Filters {
		body = appendString(body, f)
	}
	return frame(b, UNSUBSCRIBE, 2, body)
}

// Append appends the UNSUBACK's encoding; 3.1.1 has no reason codes.
func (u *Unsuback) Append(b []byte, version byte) []byte {
	codes := u.Codes
	if version != V5 {
		codes = nil
	}
	return frame(b, UNSUBACK, 0, appendAckBody(u.ID, &u.Props, codes, version))
}

// appendAckBody encodes the variable header and payload of a SUBACK or UNSUBACK: the
// packet identifier, the MQTT 5 properties, the reason codes (§3.9, §3.11).
func appendAckBody(id uint16, props *Properties, codes []ReasonCode, version byte) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	if version == V5 {
		body = appendProps(body, props)
	}
	for _, c := range codes {
		body = append(body, byte(c))
	}
	return body
}

// Append appends a PINGREQ.
func (*Pingreq) Append(b []byte, _ byte) []byte { return append(b, byte(PINGREQ)<<4, 0) }

// Append appends a PINGRESP.
func (*Pingresp) Append(b []byte, _ byte) []byte { return append(b, byte(PINGRESP)<<4, 0) }

// Append appends the DISCONNECT's encoding: in 3.1.1 the bare packet; in MQTT 5 the
// reason code and properties, both left out for a normal disconnection.
func (d *Disconnect) Append(b []byte, version byte) []byte {
	if version != V5 || (d.Code == Success && d.Props.Set == 0 && len(d.Props.User) == 0) {
		return append(b, byte(DISCONNECT)<<4, 0)
	}
	body := appendProps([]byte{byte(d.Code)}, &d.Props)
	return frame(b, DISCONNECT, 0, body)
}

// Append appends the AUTH's encoding.
func (a *Auth) Append(b []byte, _ byte) []byte {
	body := appendProps([]byte{byte(a.Code)}, &a.Props)
	return frame(b, AUTH, 0, body)
}
