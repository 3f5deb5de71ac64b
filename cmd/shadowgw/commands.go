package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/edge"
	"github.com/shadowgw/shadowgw/edge/credential"
	"github.com/shadowgw/shadowgw/store"
	"github.com/shadowgw/shadowgw/uplink"
)

// configFlags defines --config and the override flags on fs.
func configFlags(fs *flag.FlagSet) (path *string, over *config.Flags) {
	path = fs.String("config", "", "read the configuration from `FILE` (default: the embedded defaults)")
	over = &config.Flags{}
	over.Register(fs)
	return path, over
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path, over := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shadowgw run: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := config.Check(*path, *over)
	if err != nil {
		return err
	}
	log, level, err := newLogger(stderr, cfg.Log.Level)
	if err != nil {
		return err
	}
	gc, err := gatewayFromConfig(cfg)
	if err != nil {
		return err
	}
	gc.LogLevel = level
	tuneGC()
	log.Info("shadowgw starting", "version", versionString(), "config", cfg)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration warning", "problem", w.Error())
	}
	ctx, stop := signalContext()
	defer stop()
	err = runGateway(ctx, gc, log, nil) // the systemd sidecar reports readiness
	if err != nil {
		return err
	}
	log.Info("shadowgw stopped")
	return nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path, over := configFlags(fs)
	withStore := fs.Bool("store", false, "also verify the store file in [store] dir (the gateway must be stopped)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Check(*path, *over)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(stderr, err)
			return fmt.Errorf("%d problem(s) in the configuration", len(errs))
		}
		return err
	}
	if _, err := gatewayFromConfig(cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "configuration OK\n%s\n", cfg)
	if *withStore {
		return checkStoreFile(cfg, stdout) // storecheck.go
	}
	return nil
}

func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("empty password")
	}
	h, err := credential.Hash(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}

// gatewayFromConfig turns the validated configuration into the components' settings.
func gatewayFromConfig(cfg config.Config) (gatewayConfig, error) {
	users, targets := edgeAccess(cfg)
	gc := gatewayConfig{
		Listen:  cfg.Edge.Listen,
		DataDir: cfg.Store.Dir,
		Edge: edge.Config{
			MaxFrameSize:      cfg.Edge.MaxFrameSize,
			IdleTimeout:       cfg.Edge.IdleTimeout,
			MaxMessageSize:    cfg.Edge.MaxMessageSize,
			Credit:            cfg.Edge.Credit,
			MaxConnections:    cfg.Edge.MaxConnections,
			MaxConnsPerHost:   cfg.Edge.MaxConnectionsPerHost,
			MaxSessions:       cfg.Edge.MaxSessions,
			MaxLinks:          cfg.Edge.MaxLinks,
			HandshakeTimeout:  cfg.Edge.HandshakeTimeout,
			AllowAnonymous:    cfg.Edge.AllowAnonymous,
			AnonymousNetworks: cfg.Edge.AnonymousNetworks,
			Users:             users,
			Targets:           targets,
		},
		Store:  store.Options{MaxBatch: cfg.Store.MaxBatch, MaxDelay: cfg.Store.MaxDelay, MaxBytes: cfg.Store.MaxBytes, MaxMessages: cfg.Store.MaxMessages, MinFree: cfg.Store.MinFree, WhenFull: whenFull(cfg.Store.WhenFull), DefaultTTL: cfg.Store.DefaultTTL, Recover: true},
		Config: cfg,
	}
	routes, err := storeRoutes(cfg)
	if err != nil {
		return gatewayConfig{}, err
	}
	gc.Store.Routes = routes
	if cfg.Edge.IdleTimeout == 0 {
		gc.Edge.IdleTimeout = -1
	}
	if cfg.Uplink.Enabled() {
		serverName := cfg.Uplink.TLSServerName()
		if len(cfg.Uplink.FallbackURLs) > 0 {
			serverName = cfg.Uplink.ServerName // each URL's own host unless set
		}
		gc.Uplink = &uplink.Config{
			URL:                    strings.Join(append([]string{cfg.Uplink.URL}, cfg.Uplink.FallbackURLs...), ","),
			CAFile:                 cfg.Uplink.CA,
			ServerName:             serverName,
			CertFile:               cfg.Uplink.CertFile,
			KeyFile:                cfg.Uplink.KeyFile,
			User:                   cfg.Uplink.User,
			PasswordFile:           cfg.Uplink.PasswordFile,
			AddressPrefix:          cfg.Uplink.AddressPrefix,
			AddressTemplate:        cfg.Uplink.AddressTemplate,
			SourceAnnotation:       cfg.Uplink.SourceAnnotation,
			InFlight:               cfg.Uplink.InFlight,
			BackoffMin:             cfg.Uplink.ReconnectMin,
			BackoffMax:             cfg.Uplink.ReconnectMax,
			RateLimit:              float64(cfg.Uplink.RateLimit),
			RateLimitBytes:         int(cfg.Uplink.RateLimitBytes),
			PreferredProbeInterval: cfg.Uplink.PreferredProbeInterval,
		}
	}
	commandsFromConfig(cfg, &gc)
	return gc, nil
}

// storeRoutes returns the store's routes from the [route] sections; a route that leaves
// when-full or default-ttl unset gets [store]'s. Validate checked them with file and
// line; the store's own check is a second line of defence.
func storeRoutes(cfg config.Config) ([]store.Route, error) {
	var routes []store.Route
	for _, r := range cfg.Routes {
		routes = append(routes, store.Route{
			Name:        r.Name,
			Addresses:   r.Addresses,
			Priority:    r.Priority,
			MaxBytes:    r.MaxBytes,
			MaxMessages: r.MaxMessages,
			WhenFull:    whenFull(cfg.EffectiveWhenFull(r)),
			DefaultTTL:  cfg.EffectiveDefaultTTL(r),
		})
	}
	if err := store.ValidateRoutes(routes); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return routes, nil
}

// edgeAccess returns the edge server's SASL PLAIN users (name → hash) and target
// restrictions (user, or "" for anonymous devices → patterns) from the configuration.
func edgeAccess(cfg config.Config) (users map[string]string, targets map[string][]string) {
	users = make(map[string]string, len(cfg.Devices))
	targets = map[string][]string{}
	for _, d := range cfg.Devices {
		users[d.Name] = d.PasswordHash
		if len(d.Targets) > 0 {
			targets[d.Name] = d.Targets
		}
	}
	if len(cfg.Edge.AnonymousTargets) > 0 {
		targets[""] = cfg.Edge.AnonymousTargets
	}
	return users, targets
}
