package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/mqtt"
)

// On SIGHUP the gateway reads its configuration again, from the same file and with the
// same command-line overrides, validates it as `shadowgw check` does, and applies what
// can change while it runs: the log level, the devices (added, removed, given a new
// password hash or new targets) and the targets of anonymous devices. Connections and
// links already open keep going. Anything else that changed is named in the log as
// needing a restart and keeps its running value. A configuration that does not validate
// changes nothing; the log says why.

func newReloader(config.Config) (sidecar, error) {
	return func(ctx context.Context, p parts) error {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		r := reloader{running: p.Config, edge: p.Edge, mqtt: p.MQTT, level: p.LogLevel, log: p.Log.With("component", "config")}
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				r.reload()
			}
		}
	}, nil
}

// reloader applies configuration reloads. It is used by one goroutine.
type reloader struct {
	running config.Config // what is in effect: the start's, with the reloaded values
	edge    *edge.Server
	mqtt    *mqtt.Server   // nil without [mqtt] listen
	level   *slog.LevelVar // the handler's level (newLogger); nil: not changed
	log     *slog.Logger
}

// reload reads the configuration again and applies what it can.
func (r *reloader) reload() {
	file := r.running.File()
	next, err := config.Check(file, r.running.Overrides())
	if err == nil {
		_, err = gatewayFromConfig(next)
	}
	if err != nil {
		r.log.Error("configuration reload failed; the running configuration stays", "file", file, "err", err)
		return
	}
	var applied, restart []string
	devices := false
	for _, c := range config.Changes(r.running, next) {
		switch {
		case c == "[log] level":
			applied = append(applied, c)
		case strings.HasPrefix(c, "[device "), c == "[edge] anonymous-targets":
			applied = append(applied, c)
			devices = true
		default:
			restart = append(restart, c)
		}
	}
	for _, w := range next.Warnings() {
		r.log.Warn("configuration warning", "problem", w.Error())
	}
	attrs := []any{"file", file}
	if len(applied) > 0 {
		attrs = append(attrs, "applied", strings.Join(applied, ", "))
	}
	switch {
	case len(applied) == 0 && len(restart) == 0:
		r.log.Info("configuration reloaded: nothing changed", attrs...)
	case len(restart) == 0:
		r.log.Info("configuration reloaded", attrs...)
	default:
		attrs = append(attrs, "needs_restart", strings.Join(restart, ", "))
		r.log.Warn("configuration reloaded; some changes need a restart and are not in effect", attrs...)
	}
	if devices {
		r.edge.SetAccess(edgeAccess(next))
		if r.mqtt != nil {
			r.mqtt.SetAccess(edgeAccess(next))
		}
		r.running.Devices = next.Devices
		r.running.Edge.AnonymousTargets = next.Edge.AnonymousTargets
	}
	if r.running.Log.Level != next.Log.Level {
		if r.level != nil {
			r.level.Set(next.Log.SlogLevel())
		}
		r.running.Log = next.Log
	}
}
