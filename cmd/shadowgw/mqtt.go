package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge/mqtt"
	"github.com/shadowgw/shadowgw/store"
)

// The MQTT server ([mqtt] listen) runs as a sidecar: it starts once the store is open
// and stops after the AMQP edge, before the store closes.
func init() { sidecars = append(sidecars, newMQTTSidecar) }

// mqttSink hands the MQTT server's messages to the store's group commit. It is the one
// place that knows both: the store's API changes here.
type mqttSink struct{ st *store.Store }

func (s mqttSink) Append(m *mqtt.Message, done func(error)) {
	s.st.AppendAsync(&store.Message{
		Address:  m.Address,
		Source:   m.Source,
		Received: m.Received,
		Payload:  m.Payload,
		Info:     &m.Info,
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
	return mqtt.Config{
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
	}
}

// newMQTTSidecar returns the MQTT server's sidecar, or nil when [mqtt] listen is empty.
// It listens at once, so that a bad address fails the start rather than a running
// gateway; a start that fails later leaves the listener to the exiting process.
func newMQTTSidecar(cfg config.Config) (sidecar, error) {
	if !cfg.MQTT.Enabled() {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MQTT.Listen)
	if err != nil {
		return nil, fmt.Errorf("mqtt listener: %w", err)
	}
	return func(ctx context.Context, p parts) error {
		srv := mqtt.New(mqttConfig(p.Config), mqttSink{p.Store}, nil, p.Log)
		p.Log.Info("listening for MQTT devices", "addr", ln.Addr().String())
		// SIGHUP: device credentials and targets change as for AMQP devices (reload.go).
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		reloadCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-reloadCtx.Done():
					return
				case <-hup:
					if next, err := config.Check(p.Config.File(), p.Config.Overrides()); err == nil {
						users, targets := edgeAccess(next)
						srv.SetAccess(users, targets)
					}
				}
			}
		}()
		err := srv.Serve(ctx, ln)
		stop()
		wg.Wait()
		return err
	}, nil
}
