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

	"github.com/shadowgw/shadowgw/edge"
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
	}, done)
}

// gatewayConfig is what runGateway needs, resolved from the configuration file and flags.
type gatewayConfig struct {
	Listen  string
	DataDir string
	Edge    edge.Config
	Store   store.Options
	Uplink  *uplink.Config // nil: no uplink, buffer only
}

// runGateway runs the store, the device listener and the uplink until ctx is done. On
// the way down the edge stops first (so every message it acknowledged is stored and no
// new one arrives), then the uplink (leaving what it had in flight in the store), then
// the store commits what is queued and closes. ready, if not nil, is called once the
// listener and the store are up.
func runGateway(ctx context.Context, cfg gatewayConfig, log *slog.Logger, ready func(addr net.Addr)) error {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	cfg.Store.Logger = log
	st, err := store.Open(filepath.Join(cfg.DataDir, storeFile), cfg.Store)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("device listener: %w", err)
	}
	log.Info("listening for devices", "addr", ln.Addr().String(), "anonymous", cfg.Edge.AllowAnonymous, "users", len(cfg.Edge.Users))

	upCtx, stopUplink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUplink()
	var wg sync.WaitGroup
	var upErr error
	if cfg.Uplink != nil {
		up, err := uplink.New(*cfg.Uplink, st, log)
		if err != nil {
			ln.Close()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			upErr = up.Run(upCtx)
		}()
	} else {
		log.Warn("no uplink configured: messages are stored and kept until an uplink is set", "data", cfg.DataDir)
	}

	if ready != nil {
		ready(ln.Addr())
	}
	srv := edge.New(cfg.Edge, storeSink{st}, log)
	err = srv.Serve(ctx, ln)
	stopUplink()
	wg.Wait()
	return errors.Join(err, upErr)
}
