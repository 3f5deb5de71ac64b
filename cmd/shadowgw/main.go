// Command shadowgw is the shadow gateway: it accepts plain AMQP 1.0 from devices on the
// local network, stores every message durably before acknowledging it, and forwards the
// messages over TLS to a cloud broker, buffering through outages and reboots.
//
// Usage:
//
//	shadowgw run [--config FILE] [--listen ADDR] [--data DIR] [--uplink URL] ...
//	shadowgw check --config FILE
//	shadowgw passwd            (reads a device password on stdin, prints its hash)
//	shadowgw version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(rest, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "passwd":
		err = cmdPasswd(rest, stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "shadowgw", versionString())
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "shadowgw: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	}
	fmt.Fprintln(stderr, "shadowgw:", err)
	return 1
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: shadowgw COMMAND [flags]

commands:
  run       run the gateway (with no flags: devices on 127.0.0.1:5672, data in
            ./shadowgw-data, no uplink: it accepts, stores and buffers)
  check     validate a configuration file and report every problem with its line
  passwd    read a device password from standard input and print its hash for a
            [device "NAME"] section
  version   print the version

Run 'shadowgw COMMAND -h' for a command's flags.
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// signalContext returns a context cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// newLogger returns the daemon's logger: text lines on stderr (journald adds time and
// unit when run under systemd).
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
