package packet

// Decode decodes a packet sent by a client to a server, from its fixed header and body,
// for protocol level version (V311 or V5; a CONNECT is decoded whatever version says, and
// tells its own). Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) are
// decoded too, for tests and tools. The result aliases body.
func Decode(h Header, body []byte, version byte) (Packet, error) {
	if err := checkFlags(h, version); err != nil {
		return nil, err
	}
	if h.Type == AUTH && version != V5 {
		return nil, malformed("AUTH is an MQTT 5 packet")
	}
	r := &reader{b: body}
	var p Packet
	switch h.Type {
	case CONNECT:
		p = decodeConnect(r)
	case CONNACK:
		p = decodeConnack(r, version)
	case PUBLISH:
		p = decodePublish(r, h.Flags, version)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		a := &Ack{Kind: h.Type, ID: r.uint16("packet identifier")}
		if version == V5 {
			a.Code = r.optionalCode(ctxAck, &a.Props)
		}
		p = a
	case SUBSCRIBE:
		p = decodeSubscribe(r, version)
	case SUBACK:
		s := &Suback{}
		s.ID, s.Codes = r.ackBody(ctxSuback, &s.Props, version, true)
		p = s
	case UNSUBSCRIBE:
		u := &Unsubscribe{ID: r.uint16("packet identifier")}
		if version == V5 {
			r.props(ctxUnsubscribe, &u.Props)
		}
		for r.err == nil && r.left() > 0 {
			u.Filters = append(u.Filters, r.string("topic filter"))
		}
		if r.err == nil && len(u.Filters) == 0 {
			r.fail(protocolErr("UNSUBSCRIBE without a topic filter"))
		}
		p = u
	case UNSUBACK:
		u := &Unsuback{}
		// 3.1.1 UNSUBACK has no reason codes.
		u.ID, u.Codes = r.ackBody(ctxUnsuback, &u.Props, version, version == V5)
		p = u
	case PINGREQ:
		p = &Pingreq{}
	case PINGRESP:
		p = &Pingresp{}
	case DISCONNECT:
		d := &Disconnect{}
		if version == V5 {
			d.Code = r.optionalCode(ctxDisconnect, &d.Props)
		}
		p = d
	case AUTH:
		a := &Auth{}
		if r.left() > 0 {
			a.Code = ReasonCode(r.byte("reason code"))
			r.props(ctxAuth, &a.Props)
		}
		p = a
	default:
		return nil, malformed("reserved packet type %d", byte(h.Type))
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.left() > 0 {
		return nil, malformed("%s: %d bytes left after the packet", h.Type, r.left())
	}
	return p, nil
}

// checkFlags checks the fixed header flags (§2.1.3 in 5.0, §2.2.2 in 3.1.1): PUBREL,
// SUBSCRIBE and UNSUBSCRIBE carry 0010, PUBLISH its own, every other packet 0000.
func checkFlags(h Header, version byte) error {
	want := byte(0)
	switch h.Type {
	case PUBLISH:
		if (h.Flags>>1)&3 == 3 {
			return malformed("PUBLISH with QoS 3")
		}
		if h.Flags&0x08 != 0 && (h.Flags>>1)&3 == 0 {
			// 5.0 §3.3.1.1 and 3.1.1 §3.3.1.1: DUP must be 0 for QoS 0.
			return malformed("PUBLISH with DUP set and QoS 0")
		}
		return nil
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		want = 2
	}
	if h.Flags != want {
		return malformed("%s with fixed header flags %04b, want %04b", h.Type, h.Flags, want)
	}
	return nil
}

func decodeConnect(r *reader) *Connect {
	c := &Connect{}
	c.ProtocolName = r.string("protocol name")
	c.Version = r.byte("protocol level")
	if r.err != nil {
		return c
	}
	if c.ProtocolName != "MQTT" && c.ProtocolName != "MQIsdp" {
		r.fail(protocolErr("protocol name %q, want MQTT", c.ProtocolName))
		return c
	}
	if c.ProtocolName != "MQTT" || (c.Version != V311 && c.Version != V5) {
		r.fail(&Error{Code: UnsupportedProtocolVersion, Msg: "unsupported protocol level " + itoa(int(c.Version))})
		return c
	}
	flags := r.byte("connect flags")
	if flags&1 != 0 {
		r.fail(malformed("connect flags: reserved bit set"))
		return c
	}
	c.CleanStart = flags&0x02 != 0
	hasWill := flags&0x04 != 0
	willQoS := (flags >> 3) & 3
	willRetain := flags&0x20 != 0
	c.HasPassword = flags&0x40 != 0
	c.HasUser = flags&0x80 != 0
	if !hasWill && (willQoS != 0 || willRetain) {
		r.fail(malformed("connect flags: will QoS or retain without the will flag"))
		return c
	}
	if willQoS == 3 {
		r.fail(malformed("connect flags: will QoS 3"))
		return c
	}
	if c.Version == V311 && c.HasPassword && !c.HasUser {
		r.fail(malformed("connect flags: password without user name (3.1.1 §3.1.2.9)"))
		return c
	}
	c.KeepAlive = r.uint16("keep alive")
	if c.Version == V5 {
		r.props(ctxConnect, &c.Props)
	}
	c.ClientID = r.string("client identifier")
	if hasWill {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if c.Version == V5 {
			r.props(ctxWill, &w.Props)
		}
		w.Topic = r.string("will topic")
		w.Payload = r.binary("will payload")
		if r.err == nil && !ValidTopicName(w.Topic) {
			r.fail(protocolErr("will topic %q is not a valid topic name", w.Topic))
		}
		c.Will = w
	}
	if c.HasUser {
		c.User = r.string("user name")
	}
	if c.HasPassword {
		c.Password = r.binary("password")
	}
	return c
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b [12]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

func decodeConnack(r *reader, version byte) *Connack {
	c := &Connack{}
	f := r.byte("connect acknowledge flags")
	if f&^1 != 0 {
		r.fail(malformed("connack flags: reserved bits set"))
	}
	c.SessionPresent = f&1 != 0
	c.Code = ReasonCode(r.byte("return code"))
	if version == V5 {
		r.props(ctxConnack, &c.Props)
	}
	return c
}

func decodePublish(r *reader, flags byte, version byte) *Publish {
	p := &Publish{Dup: flags&0x08 != 0, QoS: (flags >> 1) & 3, Retain: flags&1 != 0}
	p.Topic = r.string("topic name")
	if p.QoS > 0 {
		p.ID = r.uint16("packet identifier")
		if r.err == nil && p.ID == 0 {
			r.fail(malformed("PUBLISH with packet identifier 0"))
		}
	}
	if version == V5 {
		r.props(ctxPublish, &p.Props)
	}
	if r.err != nil {
		return p
	}
	// A topic name has no wildcards (§4.7.3 / §4.7.1); MQTT 5 allows an empty one with
	// a Topic Alias.
	if p.Topic == "" && !(version == V5 && p.Props.Has(PropTopicAlias)) {
		r.fail(protocolErr("PUBLISH with an empty topic name"))
	} else if !ValidTopicName(p.Topic) && p.Topic != "" {
		r.fail(&Error{Code: TopicNameInvalid, Msg: "topic name with a wildcard: " + p.Topic})
	}
	p.Payload = r.rest()
	return p
}

func decodeSubscribe(r *reader, version byte) *Subscribe {
	s := &Subscribe{ID: r.uint16("packet identifier")}
	if r.err == nil && s.ID == 0 {
		r.fail(malformed("SUBSCRIBE with packet identifier 0"))
	}
	if version == V5 {
		r.props(ctxSubscribe, &s.Props)
	}
	for r.err == nil && r.left() > 0 {
		sub := Subscription{Filter: r.string("topic filter")}
		o := r.byte("subscription options")
		if r.err != nil {
			break
		}
		sub.QoS = o & 3
		if version == V5 {
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = (o >> 4) & 3
			if o&0xC0 != 0 || sub.RetainHandling == 3 {
				r.fail(malformed("subscription options 0x%02x: reserved bits set", o))
			}
		} else if o&0xFC != 0 {
			r.fail(malformed("requested QoS byte 0x%02x: reserved bits set", o))
		}
		if sub.QoS == 3 {
			r.fail(malformed("subscription with QoS 3"))
		}
		s.Subs = append(s.Subs, sub)
	}
	if r.err == nil && len(s.Subs) == 0 {
		r.fail(protocolErr("SUBSCRIBE without a topic filter"))
	}
	return s
}

// ValidTopicName reports whether s may be a topic name in a PUBLISH: not empty and
// without the wildcards '+' and '#' (§4.7 in both versions).
func ValidTopicName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '+' || s[i] == '#' {
			return false
		}
	}
	return true
}

// ackBody reads the variable header and payload of a SUBACK or UNSUBACK (§3.9,
// §3.11): the packet identifier, the MQTT 5 properties of ctx, and the reason codes
// when codes is true.
func (r *reader) ackBody(ctx propContext, props *Properties, version byte, codes bool) (uint16, []ReasonCode) {
	id := r.uint16("packet identifier")
	if version == V5 {
		r.props(ctx, props)
	}
	var out []ReasonCode
	if codes {
		for _, c := range r.rest() {
			out = append(out, ReasonCode(c))
		}
	}
	return id, out
}

// optionalCode reads the MQTT 5 reason code and properties of ctx that end a PUBACK,
// PUBREC, PUBREL, PUBCOMP or DISCONNECT, either of which may be left out: no reason
// code means 0x00 (Success), no properties none (5.0 §3.4.2.1, §3.14.2.1).
func (r *reader) optionalCode(ctx propContext, props *Properties) ReasonCode {
	if r.left() == 0 {
		return 0
	}
	code := ReasonCode(r.byte("reason code"))
	if r.left() > 0 {
		r.props(ctx, props)
	}
	return code
}
