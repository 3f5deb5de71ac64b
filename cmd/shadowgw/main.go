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
	cmd, rest := args[0], args[1:]
	switch c, ok := findCommand(cmd); {
	case ok:
		err = c.run(rest, stdio{stdin, stdout, stderr})
	case cmd == "version" || cmd == "--version":
		fmt.Fprintln(stdout, "shadowgw", versionString())
	case cmd == "help" || cmd == "-h" || cmd == "--help":
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
		if err != errUsage && err != flag.ErrHelp {
			fmt.Fprintln(stderr, "shadowgw:", err)
		}
		return 2
	}
	fmt.Fprintln(stderr, "shadowgw:", err)
	return 1
}

// stdio is a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand of shadowgw.
type command struct {
	name    string
	summary string // one line for the usage text
	run     func(args []string, io stdio) error
}

// commands returns shadowgw's subcommands, in the order the usage text lists them.
// Every command is here: none registers itself.
func commands() []command {
	return []command{
		{"check", "validate a configuration file and report every problem with its line",
			func(args []string, io stdio) error { return cmdCheck(args, io.out, io.err) }},
		{"passwd", "read a device password from standard input and print its hash for a [device \"NAME\"] section",
			func(args []string, io stdio) error { return cmdPasswd(args, io.in, io.out, io.err) }},
		{"queue", "inspect and repair the message store: list, dead, requeue SEQ..., purge [--dead]",
			func(args []string, io stdio) error { return cmdQueue(args, io.out, io.err) }},
		{"run", "run the gateway (with no flags: devices on 127.0.0.1:5672, data in ./shadowgw-data, no uplink: it accepts, stores and buffers)",
			func(args []string, io stdio) error { return cmdRun(args, io.err) }},
		{"sensors", "list the sensors wired to this machine (scan), or take one reading of an [input \"NAME\"] (read NAME)",
			cmdSensors},
		{"service", "install, uninstall, start, stop, restart or query the system service (installs not from the .deb)",
			cmdService},
		{"status", "show the running gateway's uplink, backlog per route, rates, disk and devices (needs [metrics] listen)",
			func(args []string, io stdio) error { return cmdStatus(args, io.out, io.err) }},
	}
}

// findCommand returns the command called name.
func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: shadowgw COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n\nRun 'shadowgw COMMAND -h' for a command's flags.\n", "version", "print the version")
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
// unit when run under systemd), and its level, which a reload may change.
func newLogger(w io.Writer, level string) (*slog.Logger, *slog.LevelVar, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", level, err)
	}
	lv := new(slog.LevelVar)
	lv.Set(l)
	if underJournal(w) {
		w = journalWriter{w}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv})), lv, nil
}
