package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/mqtt"
	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink"
)

// storeFile is the name of the store inside the data directory.
const storeFile = "shadowgw.db"

// storeSink hands the edge server's deliveries to the store's group commit.
type storeSink struct{ st *store.Store }

func (s storeSink) Store(d *edge.Delivery, done func(error)) {
	s.st.AppendAsync(&store.Message{
		Address:  d.Address,
		Source:   d.Source,
		Received: d.Received,
		Payload:  d.Payload,
		Expires:  d.Info.ExpiresAt(d.Received),
	}, done) // store.ErrFull tells the edge that the store is full

}

// Full tells the edge to grant devices no credit while the store has no room.
func (s storeSink) Full(address string) bool { return s.st.FullFor(address) }

// Room tells the edge when the store has room again.
func (s storeSink) Room() (<-chan struct{}, func()) {
	w := s.st.WatchRoom()
	return w.C, w.Stop
}

// gatewayConfig is what runGateway needs, resolved from the configuration file and flags.
type gatewayConfig struct {
	Listen  string
	DataDir string
	Edge    edge.Config
	Store   store.Options
	Uplink  *uplink.Config // nil: no uplink, buffer only
	Config  config.Config  // the whole configuration, for sidecars
	// LogLevel is the level of log's handler, which a reload changes; nil: fixed.
	LogLevel *slog.LevelVar
}

// parts are the gateway's running components, handed to sidecars.
type parts struct {
	Config config.Config
	Store  *store.Store
	Edge   *edge.Server
	MQTT   *mqtt.Server   // nil without [mqtt] listen
	Uplink *uplink.Uplink // nil without an uplink
	Addr   net.Addr       // the device listener's address
	Log    *slog.Logger

	Ready    <-chan struct{} // closed once the store is open and the listener bound
	Inputs   *inputReport    // the sensor inputs' status, for the monitor
	LogLevel *slog.LevelVar  // the daemon's log level, for reloads; may be nil
}

// A sidecar runs beside the core (metrics, sensor inputs) from the moment the store and
// the listener are up until ctx is done, and returns nil then. Sidecars stop before the
// store closes, so they may write to it. Each has a constructor that returns nil when
// the configuration does not ask for it; runGateway lists them.
type sidecar func(ctx context.Context, p parts) error

// runGateway runs the store, the device listener, the uplink and the sidecars until ctx
// is done. On the way down the edge stops first (so every message it acknowledged is
// stored and no new one arrives), then the uplink (leaving what it had in flight in the
// store) and the sidecars, then the store commits what is queued and closes. ready, if
// not nil, is called once the listener and the store are up.
func runGateway(ctx context.Context, cfg gatewayConfig, log *slog.Logger, ready func(addr net.Addr)) (err error) {
	// The sidecars the configuration asks for, built first so that a bad one fails the
	// start before anything opens: the sensor inputs (package hw), the metrics, health
	// and status endpoints, the reload on SIGHUP, and systemd's notifications.
	var side []sidecar
	for _, mk := range []func(config.Config) (sidecar, error){inputsSidecar, newMonitorSidecar, newReloader, newNotifier} {
		s, err := mk(cfg.Config)
		if err != nil {
			return err
		}
		if s != nil {
			side = append(side, s)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	cfg.Store.Logger = log
	st, err := store.Open(filepath.Join(cfg.DataDir, storeFile), cfg.Store)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("device listener: %w", err)
	}
	log.Info("listening for devices", "addr", ln.Addr().String(), "anonymous", cfg.Edge.AllowAnonymous, "users", len(cfg.Edge.Users))

	readyCh := make(chan struct{})
	p := parts{Config: cfg.Config, Store: st, Edge: edge.New(cfg.Edge, storeSink{st}, log), Addr: ln.Addr(), Log: log,
		Ready: readyCh, Inputs: &inputReport{}, LogLevel: cfg.LogLevel}
	p.Edge.SetCommands(storeCommands{st}, newPresence(st, cfg.Config.Commands.Presence, cfg.Config.Commands.PresenceTTL, log)) // devicecommands*.go
	var mqttLn net.Listener
	if p.MQTT, mqttLn, err = listenMQTT(cfg.Config, st, log); err != nil {
		ln.Close()
		return err
	}
	if cfg.Uplink != nil {
		if p.Uplink, err = uplink.New(*cfg.Uplink, st, log); err != nil {
			ln.Close()
			if mqttLn != nil {
				mqttLn.Close()
			}
			return err
		}
		p.Uplink.SetCommands(st)
	} else {
		log.Warn("no uplink configured: messages are stored and kept until an uplink is set", "data", cfg.DataDir)
	}
	if d := newDirectRoutes(cfg.Config, st, p.Uplink, log); d != nil {
		p.Edge.SetDirect(d) // [route] mode = direct: past the store, see direct.go
	}
	if dc, err := newDirectCommands(cfg.Config.Commands.Direct, cfg.Config.Commands.DirectSource, p.Uplink); err != nil {
		ln.Close()
		if mqttLn != nil {
			mqttLn.Close()
		}
		return err
	} else if dc != nil {
		p.Edge.SetDirectCommands(dc) // [commands] direct: from the cloud, see devicecommands_direct.go
	}

	// The uplink, the MQTT server and the sidecars outlive the edge by a little: they
	// are stopped after it, and before the store closes.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var wg sync.WaitGroup
	errs := make([]error, len(side)+2)
	run := func(i int, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(bgCtx)
		}()
	}
	if p.Uplink != nil {
		run(0, p.Uplink.Run)
	}
	if p.MQTT != nil {
		run(1, func(ctx context.Context) error { return p.MQTT.Serve(ctx, mqttLn) })
	}
	for i, s := range side {
		run(i+2, func(ctx context.Context) error { return s(ctx, p) })
	}

	if ready != nil {
		ready(ln.Addr())
	}
	close(readyCh)
	err = p.Edge.Serve(ctx, ln)
	stopBackground()
	wg.Wait()
	return errors.Join(append(errs, err)...)
}
