package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
	log, err := newLogger(stderr, cfg.Log.Level)
	if err != nil {
		return err
	}
	gc, err := gatewayFromConfig(cfg)
	if err != nil {
		return err
	}
	log.Info("shadowgw starting", "version", versionString(), "config", cfg.File())
	ctx, stop := signalContext()
	defer stop()
	err = runGateway(ctx, gc, log, func(net.Addr) { notifyReady() })
	if err != nil {
		return err
	}
	log.Info("shadowgw stopped")
	return nil
}

// notifyReady tells systemd (Type=notify) that the gateway is up, when run by it.
var notifyReady = func() {}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path, over := configFlags(fs)
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
	users := make(map[string]string, len(cfg.Devices))
	for _, d := range cfg.Devices {
		users[d.Name] = d.PasswordHash
	}
	gc := gatewayConfig{
		Listen:  cfg.Edge.Listen,
		DataDir: cfg.Store.Dir,
		Edge: edge.Config{
			MaxFrameSize:   cfg.Edge.MaxFrameSize,
			IdleTimeout:    cfg.Edge.IdleTimeout,
			MaxMessageSize: cfg.Edge.MaxMessageSize,
			Credit:         cfg.Edge.Credit,
			AllowAnonymous: cfg.Edge.AllowAnonymous,
			Users:          users,
		},
		Store:  store.Options{MaxBatch: cfg.Store.MaxBatch, MaxDelay: cfg.Store.MaxDelay},
		Config: cfg,
	}
	if cfg.Edge.IdleTimeout == 0 {
		gc.Edge.IdleTimeout = -1
	}
	if cfg.Uplink.Enabled() {
		gc.Uplink = &uplink.Config{
			URL:           cfg.Uplink.URL,
			CAFile:        cfg.Uplink.CA,
			ServerName:    cfg.Uplink.TLSServerName(),
			User:          cfg.Uplink.User,
			PasswordFile:  cfg.Uplink.PasswordFile,
			AddressPrefix: cfg.Uplink.AddressPrefix,
			InFlight:      cfg.Uplink.InFlight,
			BackoffMin:    cfg.Uplink.ReconnectMin,
			BackoffMax:    cfg.Uplink.ReconnectMax,
		}
	}
	return gc, nil
}
