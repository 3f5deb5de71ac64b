package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
)

// cmdStatus asks the running gateway for its status over its local HTTP endpoint.
func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shadowgw status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "find the gateway's endpoint in `FILE`'s [metrics] listen (default: 127.0.0.1:9464)")
	addr := fs.String("addr", "", "ask the gateway's endpoint at `HOST:PORT` instead")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after `DURATION`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: shadowgw status [--config FILE | --addr HOST:PORT] [--json]\n\n"+
			"Reads /status from the gateway's local HTTP endpoint, which runs while [metrics]\n"+
			"listen is set (the default is 127.0.0.1:9464).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shadowgw status: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	target := *addr
	if target == "" {
		cfg := config.Default()
		if *path != "" {
			var err error
			if cfg, err = config.Load(*path); err != nil {
				return err
			}
		}
		if cfg.Metrics.Listen == "" {
			return fmt.Errorf("[metrics] listen is empty in %s, so the gateway serves no status: set it (for example to 127.0.0.1:9464) and restart the gateway",
				orDefault(*path, "the defaults"))
		}
		target = cfg.Metrics.Listen
	}
	target = dialAddr(target)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/status", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no gateway status at %s (is the gateway running, with [metrics] listen = %s?): %w", target, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the status from %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status from %s: %s", target, resp.Status)
	}
	var r statusReport
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("status from %s: %w", target, err)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var b bytes.Buffer
	printStatus(&b, r)
	_, err = stdout.Write(b.Bytes())
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dialAddr turns a listen address into one to connect to: an empty or unspecified host
// means this host.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
