package main

// This file speaks systemd's notification protocol (sd_notify(3)) without a
// dependency: one unix datagram per state change, sent to the socket named by
// NOTIFY_SOCKET. The unit in systemd/ is Type=notify with WatchdogSec=, so:
//
//   - READY=1 goes out once the store is open and the device listener is bound
//     (runGateway closes parts.Ready then), so `systemctl start` returns only
//     when devices can connect, and units ordered After= shadowgw see it ready;
//   - WATCHDOG=1 goes out every half WATCHDOG_USEC from the systemd sidecar (see
//     notifier.run for what each ping proves); when pings stop, systemd kills
//     the process with SIGABRT (the Go runtime then writes every goroutine's
//     stack to the journal) and Restart=on-failure starts it again;
//   - STOPPING=1 goes out on SIGTERM or SIGINT, or when the gateway winds down
//     for another reason, so systemctl shows "deactivating" while the edge
//     drains and the store commits what it holds.
//
// Without NOTIFY_SOCKET (run by hand, by another init system, or by the tests)
// none of this runs.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
)

// sdNotify sends state (newline-separated VAR=VALUE assignments, see
// sd_notify(3)) to the socket named by NOTIFY_SOCKET. It does nothing and
// returns nil when NOTIFY_SOCKET is unset. A name starting with '@' is an
// abstract socket.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("sd_notify: NOTIFY_SOCKET %q: only unix socket paths and @abstract names are supported", name)
	}
	// Go's net package turns a leading '@' into the NUL byte of an abstract address.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	_, err = c.Write([]byte(state))
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// watchdogInterval returns how often to send WATCHDOG=1: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) advises, or 0 when the service manager expects no
// pings from this process (WATCHDOG_USEC unset, or WATCHDOG_PID naming another
// process).
func watchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	n, err := strconv.ParseUint(usec, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("sd_notify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	if n > math.MaxInt64/uint64(time.Microsecond) {
		return 0, nil // over 292 years: a watchdog that never fires
	}
	return time.Duration(n) * time.Microsecond / 2, nil
}

// notifier keeps systemd informed about one run of the gateway. It is created
// by newNotifier when NOTIFY_SOCKET is set and runs as a sidecar.
type notifier struct {
	watchdog time.Duration // ping interval; 0 for none
}

// newNotifier is the sidecar constructor: nil unless systemd (or a test acting
// like it) set NOTIFY_SOCKET.
func newNotifier(config.Config) (sidecar, error) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil, nil
	}
	wd, err := watchdogInterval()
	if err != nil {
		return nil, err
	}
	n := &notifier{watchdog: wd}
	return n.run, nil
}

// run sends READY=1 once p.Ready is closed, WATCHDOG=1 with a STATUS= line
// every n.watchdog, and STOPPING=1 at the first SIGTERM or SIGINT or when ctx
// ends (after the edge has stopped), then returns nil.
//
// What a ping proves: this goroutine was scheduled on time (the Go runtime is
// not wedged, no runaway goroutine starved it, the process is not stopped or
// swapping to death) and a bbolt read transaction on the store completed, so
// the store file is readable and its mmap is not held by a commit that never
// finishes remapping. Reading the two components' counters for STATUS= is
// lock-free. What it does not prove: that the committer's fsyncs complete (a
// write probe would wear the SD card every few seconds; failing commits are
// logged and counted in the store instead) or that the accept loop accepts (a
// probe connection would show up in every device statistic). Either of those
// hanging still ends in a restart only if it also blocks the read transaction.
func (n *notifier) run(ctx context.Context, p parts) error {
	log := p.Log.With("component", "systemd")
	failing := false
	send := func(state string) {
		err := sdNotify(state)
		if err != nil && !failing { // once per outage, not at every tick
			log.Warn("cannot notify systemd", "err", err)
		}
		failing = err != nil
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var tick <-chan time.Time
	if n.watchdog > 0 {
		t := time.NewTicker(n.watchdog)
		defer t.Stop()
		tick = t.C
		log.Debug("watchdog on", "interval", n.watchdog)
	}
	ready := p.Ready
	for {
		select {
		case <-ready:
			ready = nil
			send("READY=1\nSTATUS=listening for devices on " + p.Addr.String())
		case <-tick:
			if err := probeStore(p); err != nil {
				log.Warn("watchdog: store read failed", "err", err)
			}
			send("WATCHDOG=1\nSTATUS=" + status(p))
		case <-sigs:
			sigs = nil
			send("STOPPING=1\nSTATUS=stopping")
		case <-ctx.Done():
			if sigs != nil {
				send("STOPPING=1\nSTATUS=stopping")
			}
			return nil
		}
	}
}

// probeStore runs one read transaction on the store: it asks for the messages
// after the last assigned seq, of which there are none, so it touches a few
// pages and allocates nothing.
func probeStore(p parts) error {
	if p.Store == nil {
		return errors.New("no store")
	}
	_, err := p.Store.Read(p.Store.Stats().LastSeq, 1)
	return err
}

// status is the one-line state systemctl status shows.
func status(p parts) string {
	var devices int64
	if p.Edge != nil {
		devices = p.Edge.Stats().Connections
	}
	var queued, dead uint64
	if p.Store != nil {
		st := p.Store.Stats()
		queued, dead = st.Messages, st.DeadLetters
	}
	return fmt.Sprintf("%d devices connected, %d messages queued, %d dead letters", devices, queued, dead)
}
