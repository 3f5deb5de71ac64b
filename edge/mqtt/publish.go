package mqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shadowgw/shadowgw/edge/mqtt/packet"
)

// publish handles a PUBLISH (§3.3, §4.3): it is authorized, held while the Sink is full
// for its address, then handed to the Sink; its PUBACK or PUBREC follows the commit.
func (c *conn) publish(p *packet.Publish) *ending {
	if c.version == packet.V5 {
		if p.Props.Has(packet.PropTopicAlias) {
			if end := c.topicAlias(p); end != nil {
				return end
			}
		}
		if p.Props.Has(packet.PropSubscriptionID) {
			return c.protocolError(packet.ProtocolError, "subscription identifier in a client's PUBLISH")
		}
	}
	if p.QoS == 2 {
		switch c.qos2[p.ID] {
		case qos2AwaitingRel:
			// Stored already: acknowledge again, store nothing (§4.3.3).
			c.fifo = append(c.fifo, &pending{qos: 2, done: true, ack: packet.Ack{Kind: packet.PUBREC, ID: p.ID}})
			return nil
		case qos2Storing:
			return nil // its PUBREC follows the commit
		}
	}
	if !c.srv.mayPublish(c.client.User, p.Topic) {
		c.srv.logDenied.Warn(c.log, "mqtt publish refused: topic not allowed", "client", c.client.ID, "user", c.client.User, "topic", p.Topic)
		if c.version != packet.V5 {
			// 3.1.1 §3.3.5: no negative acknowledgement; close rather than pretend.
			return &ending{will: true, reason: "publish to a topic not allowed"}
		}
		switch p.QoS {
		case 1:
			c.fifo = append(c.fifo, &pending{qos: 1, done: true, ack: packet.Ack{Kind: packet.PUBACK, ID: p.ID, Code: packet.NotAuthorized}})
		case 2:
			c.fifo = append(c.fifo, &pending{qos: 2, done: true, ack: packet.Ack{Kind: packet.PUBREC, ID: p.ID, Code: packet.NotAuthorized}})
		}
		return nil
	}
	now := time.Now()
	if c.srv.sink.Full(c.srv.cfg.AddressPrefix + p.Topic) {
		c.held, c.heldAt = p, now
		c.arm()
		return nil
	}
	c.store(p, now)
	return nil
}

// topicAlias applies a PUBLISH's Topic Alias (5.0 §3.3.2.3.4): with a topic it sets
// the alias, without one it stands for the topic set last. The aliases live as long
// as the connection.
func (c *conn) topicAlias(p *packet.Publish) *ending {
	a := p.Props.TopicAlias
	if a == 0 || int(a) > c.srv.cfg.TopicAliasMaximum {
		return c.protocolError(packet.TopicAliasInvalid, fmt.Sprintf("topic alias %d outside 1..%d", a, max(c.srv.cfg.TopicAliasMaximum, 0)))
	}
	if p.Topic != "" {
		if c.aliases == nil {
			c.aliases = make(map[uint16]string)
		}
		c.aliases[a] = p.Topic
		return nil
	}
	t, ok := c.aliases[a]
	if !ok {
		return c.protocolError(packet.ProtocolError, fmt.Sprintf("topic alias %d used before it was set", a))
	}
	p.Topic = t
	return nil
}

// store builds the message of p and hands it to the Sink.
func (c *conn) store(p *packet.Publish, received time.Time) {
	payload, info := Build(Publication{Topic: p.Topic, QoS: p.QoS, Retain: p.Retain, Props: &p.Props, Payload: p.Payload}, c.source, received)
	pd := &pending{
		qos: p.QoS,
		msg: &Message{Address: c.srv.cfg.AddressPrefix + p.Topic, Source: c.source, Received: received, Payload: payload, Info: info},
	}
	switch p.QoS {
	case 1:
		pd.ack = packet.Ack{Kind: packet.PUBACK, ID: p.ID}
		c.fifo = append(c.fifo, pd)
	case 2:
		pd.ack = packet.Ack{Kind: packet.PUBREC, ID: p.ID}
		c.fifo = append(c.fifo, pd)
		c.qos2[p.ID] = qos2Storing
	}
	c.storing++
	c.append(pd)
}

// append hands pd to the Sink; the completion reaches the owner through wake.
func (c *conn) append(pd *pending) {
	c.srv.sink.Append(pd.msg, func(err error) {
		c.mu.Lock()
		pd.err = err
		c.completed = append(c.completed, pd)
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	})
}

// collect accounts for the Sink's completions and the Commands' news.
func (c *conn) collect() {
	c.mu.Lock()
	done := c.completed
	c.completed = nil
	wake, cmdDone := c.cmdWake, c.cmdDone
	c.cmdWake, c.cmdDone = false, nil
	c.mu.Unlock()
	c.collectCommands(wake, cmdDone)
	for _, pd := range done {
		if errors.Is(pd.err, ErrFull) {
			// Full after all (the Sink filled up between Full and the commit): keep
			// it, and the acknowledgements behind it, until there is room.
			pd.err, pd.retry = nil, true
			c.retries = append(c.retries, pd)
			c.arm()
			continue
		}
		c.storing--
		pd.done = true
		if pd.err == nil {
			c.srv.messages.Add(1)
			c.srv.bytes.Add(uint64(len(pd.msg.Payload)))
			if pd.qos == 2 {
				c.qos2[pd.ack.ID] = qos2AwaitingRel
			}
			continue
		}
		c.srv.logNotStored.Warn(c.log, "mqtt message not stored", "client", c.client.ID, "address", pd.msg.Address, "qos", pd.qos, "err", pd.err)
		switch {
		case pd.qos == 0:
			c.srv.dropped.Add(1)
		case c.version == packet.V5:
			// A negative acknowledgement ends the flow (5.0 §4.3.2, §4.3.3); the
			// client knows the message was not taken.
			pd.ack.Code = packet.UnspecifiedError
			if pd.qos == 2 {
				delete(c.qos2, pd.ack.ID)
			}
		}
	}
}

// resume hands the held message and the ones to retry to the Sink once their
// addresses have room.
func (c *conn) resume() {
	keep := c.retries[:0]
	for _, pd := range c.retries {
		if c.srv.sink.Full(pd.msg.Address) {
			keep = append(keep, pd)
			continue
		}
		pd.retry = false
		c.append(pd)
	}
	clear(c.retries[len(keep):])
	c.retries = keep
	// The held message came after the ones to retry: it waits for them, so that the
	// store keeps the client's order.
	if c.held != nil && len(c.retries) == 0 && !c.srv.sink.Full(c.srv.cfg.AddressPrefix+c.held.Topic) {
		p, at := c.held, c.heldAt
		c.held = nil
		c.store(p, at)
	}
	if c.held != nil || len(c.retries) > 0 {
		c.arm()
	}
}

// writeAcks writes the acknowledgements at the head of the FIFO whose messages are
// stored, in PUBLISH order (§4.6). A 3.1.1 client whose message could not be stored is
// disconnected, since 3.1.1 has no negative acknowledgement.
func (c *conn) writeAcks() *ending {
	n := 0
	for _, pd := range c.fifo {
		if !pd.done {
			break
		}
		if pd.err != nil && c.version != packet.V5 {
			c.fifo = c.fifo[n:]
			return &ending{will: true, reason: "message not stored", err: pd.err}
		}
		c.write(&pd.ack)
		n++
	}
	if n > 0 {
		clear(c.fifo[:n])
		c.fifo = c.fifo[n:]
	}
	return nil
}

// pubrel handles PUBREL (§3.6): the QoS 2 exchange ends with PUBCOMP.
func (c *conn) pubrel(p *packet.Ack) {
	ack := packet.Ack{Kind: packet.PUBCOMP, ID: p.ID}
	if c.qos2[p.ID] == qos2AwaitingRel {
		delete(c.qos2, p.ID)
	} else if c.version == packet.V5 {
		ack.Code = packet.PacketIDNotFound
	}
	// In the FIFO, so that it cannot overtake the PUBREC of the same identifier.
	c.fifo = append(c.fifo, &pending{done: true, ack: ack})
}

// publishWill stores the Will Message (§3.1.2.5), at once or, for MQTT 5, after the
// Will Delay Interval or when the session ends, whichever is first (5.0 §3.1.3.2.2); a
// new connection of the same client before then cancels it.
func (c *conn) publishWill() {
	w := c.will
	c.will = nil
	delay := time.Duration(0)
	if c.version == packet.V5 && w.Props.Has(packet.PropWillDelay) {
		delay = time.Duration(min(w.Props.WillDelay, c.expiry)) * time.Second
	}
	c.srv.will(c.client.ID, c.source, w, delay, c.log)
}

// will stores w from source after delay, unless the client connects again first.
func (s *Server) will(clientID, source string, w *packet.Will, delay time.Duration, log *slog.Logger) {
	store := func() {
		now := time.Now()
		payload, info := Build(Publication{Topic: w.Topic, QoS: w.QoS, Retain: w.Retain, Props: &w.Props, Payload: w.Payload}, source, now)
		m := &Message{Address: s.cfg.AddressPrefix + w.Topic, Source: source, Received: now, Payload: payload, Info: info}
		s.sink.Append(m, func(err error) {
			if err != nil {
				s.dropped.Add(1)
				s.logNotStored.Warn(log, "mqtt will not stored", "address", m.Address, "err", err)
				return
			}
			s.messages.Add(1)
			s.bytes.Add(uint64(len(m.Payload)))
		})
	}
	if delay <= 0 {
		store()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return // a gateway shutting down publishes no wills
	}
	var t *time.Timer
	s.willWG.Add(1)
	t = time.AfterFunc(delay, func() {
		defer s.willWG.Done()
		s.mu.Lock()
		mine := s.wills[clientID] == t
		if mine {
			delete(s.wills, clientID)
		}
		s.mu.Unlock()
		if mine {
			store()
		}
	})
	if old := s.wills[clientID]; old != nil && old.Stop() {
		s.willWG.Done()
	}
	s.wills[clientID] = t
}

// cancelWill drops the delayed will of clientID, if any; s.mu is held.
func (s *Server) cancelWill(clientID string) {
	if t := s.wills[clientID]; t != nil {
		delete(s.wills, clientID)
		if t.Stop() {
			s.willWG.Done()
		}
	}
}

// stopWills drops every delayed will and waits for those already being stored.
func (s *Server) stopWills() {
	s.mu.Lock()
	s.stopped = true
	for id := range s.wills {
		s.cancelWill(id)
	}
	s.mu.Unlock()
	s.willWG.Wait()
}
