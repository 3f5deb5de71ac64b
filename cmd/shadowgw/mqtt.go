package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge/mqtt"
	"github.com/shadowgw/shadowgw/store"
)

// mqttSink hands the MQTT server's messages to the store's group commit. It is the one
// place that knows both: the store's API changes here.
type mqttSink struct{ st *store.Store }

func (s mqttSink) Append(m *mqtt.Message, done func(error)) {
	s.st.AppendAsync(&store.Message{
		Address:  m.Address,
		Source:   m.Source,
		Received: m.Received,
		Payload:  m.Payload,
		Expires:  m.Info.ExpiresAt(m.Received),
	}, func(err error) {
		if errors.Is(err, store.ErrFull) {
			err = fmt.Errorf("%w: %w", mqtt.ErrFull, err)
		}
		done(err)
	})
}

// Full is true while the address's route has no room and applies backpressure.
func (s mqttSink) Full(address string) bool { return s.st.FullFor(address) }

// mqttConfig returns the MQTT server's settings: [mqtt], with the access rules of the
// AMQP devices.
func mqttConfig(cfg config.Config) mqtt.Config {
	users, targets := edgeAccess(cfg)
	var cmdAccess map[string][]string
	if ids := cfg.Commands.AnonymousIDs; len(ids) > 0 {
		cmdAccess = map[string][]string{"": ids} // as for AMQP devices (devicecommands.go)
	}
	return mqtt.Config{
		CommandAccess:     cmdAccess,
		AllowAnonymous:    cfg.Edge.AllowAnonymous,
		AnonymousNetworks: cfg.Edge.AnonymousNetworks,
		Users:             users,
		Targets:           targets,
		AddressPrefix:     cfg.MQTT.AddressPrefix,
		MaxConnections:    cfg.MQTT.MaxConnections,
		MaxPacketSize:     int(cfg.MQTT.MaxPacketSize),
		ReceiveMaximum:    cfg.MQTT.ReceiveMaximum,
		MaxKeepAlive:      cfg.MQTT.MaxKeepAlive,
		HandshakeTimeout:  cfg.MQTT.HandshakeTimeout,
		CommandInflight:   cfg.MQTT.CommandInFlight,
		TopicAliasMaximum: cmp.Or(cfg.MQTT.TopicAliasMaximum, -1), // mqtt: 0 is the default, negative none
	}
}

// listenMQTT returns the MQTT server and its listener, or nil when [mqtt] listen is
// empty. It listens at once, so that a bad address fails the start.
func listenMQTT(cfg config.Config, st *store.Store, log *slog.Logger) (*mqtt.Server, net.Listener, error) {
	if !cfg.MQTT.Enabled() {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MQTT.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt listener: %w", err)
	}
	log.Info("listening for MQTT devices", "addr", ln.Addr().String())
	return mqtt.New(mqttConfig(cfg), mqttSink{st}, mqttCommands{st}, log), ln, nil
}
