// Command shadowgw-bench measures a shadowgw gateway: simulated devices send plain AMQP
// 1.0 to it, an optional consumer counts what reaches the cloud broker, and the
// gateway's memory and CPU time are read from /proc. It reports throughput, latency
// percentiles, lost and duplicated messages, resident memory and CPU time, as text or
// JSON. See README.md beside this file.
//
// Usage:
//
//	shadowgw-bench [flags]                          against a running gateway
//	shadowgw-bench [flags] --spawn BIN -- ARGS...   start BIN ARGS... (a gateway) first
//	shadowgw-bench --idle N [flags]                 hold N idle device connections
//	shadowgw-bench mqtt [flags]                     MQTT clients against an MQTT server
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line.
type options struct {
	Addr         string        `json:"addr"`
	Devices      int           `json:"devices"`
	Messages     int           `json:"messages_per_device,omitempty"`
	Duration     time.Duration `json:"-"`
	Size         int           `json:"size"`
	Settled      bool          `json:"settled"`
	Durable      bool          `json:"durable"`
	Window       int           `json:"window"`
	Rate         float64       `json:"rate,omitempty"` // messages per second, all devices; 0: as fast as possible
	Address      string        `json:"address"`
	User         string        `json:"-"`
	PasswordFile string        `json:"-"`

	CloudURL          string        `json:"-"`
	CloudCA           string        `json:"-"`
	CloudServerName   string        `json:"-"`
	CloudUser         string        `json:"-"`
	CloudPasswordFile string        `json:"-"`
	CloudAddress      string        `json:"cloud_address,omitempty"`
	CloudQuiet        time.Duration `json:"-"`

	GatewayPID int           `json:"-"`
	Spawn      string        `json:"-"`
	SpawnArgs  []string      `json:"-"`
	SpawnLog   string        `json:"-"`
	Idle       int           `json:"idle,omitempty"`
	Hold       time.Duration `json:"-"`
	Timeout    time.Duration `json:"-"`
	JSON       bool          `json:"-"`
	Straight   bool          `json:"straight,omitempty"`
	NoConsumer bool          `json:"no_consumer,omitempty"`
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("shadowgw-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:5672", "the gateway's device listener, `HOST:PORT`")
	fs.IntVar(&o.Devices, "devices", 4, "simulated devices, one connection each")
	fs.IntVar(&o.Messages, "messages", 1000, "messages per device (0 with --duration: no limit)")
	fs.DurationVar(&o.Duration, "duration", 0, "send for `DURATION` instead of a fixed count")
	fs.IntVar(&o.Size, "size", 256, "message body size in bytes")
	fs.BoolVar(&o.Settled, "settled", false, "send pre-settled (at most once) instead of waiting for each outcome")
	fs.BoolVar(&o.Durable, "durable", true, "set the durable flag in each message's header")
	fs.IntVar(&o.Window, "window", 100, "unsettled messages in flight per device")
	fs.Float64Var(&o.Rate, "rate", 0, "target rate in messages per second across all devices (0: as fast as possible)")
	fs.StringVar(&o.Address, "address", "bench", "target `ADDRESS` the devices send to")
	fs.StringVar(&o.User, "user", "", "authenticate the devices with SASL PLAIN as `USER` (default ANONYMOUS)")
	fs.StringVar(&o.PasswordFile, "password-file", "", "the devices' password, first line of `FILE`")
	fs.StringVar(&o.CloudURL, "cloud-url", "", "count arrivals at the cloud broker `amqps://HOST:PORT` (default: no consumer)")
	fs.StringVar(&o.CloudCA, "cloud-ca", "", "PEM CA certificates for the cloud broker (`FILE`; default: the system's)")
	fs.StringVar(&o.CloudServerName, "cloud-server-name", "", "`NAME` the broker's certificate must match (default: the URL's host)")
	fs.StringVar(&o.CloudUser, "cloud-user", "", "SASL PLAIN `USER` for the cloud broker")
	fs.StringVar(&o.CloudPasswordFile, "cloud-password-file", "", "the cloud user's password, first line of `FILE`")
	fs.StringVar(&o.CloudAddress, "cloud-address", "", "`ADDRESS` to consume from, e.g. /queue/bench")
	fs.DurationVar(&o.CloudQuiet, "cloud-quiet", 15*time.Second, "after sending, stop waiting for arrivals once none came for `DURATION`")
	fs.IntVar(&o.GatewayPID, "gateway-pid", 0, "read the gateway's memory and CPU time from /proc/`PID`")
	fs.StringVar(&o.Spawn, "spawn", "", "start the gateway `BINARY` with the arguments after -- and stop it at the end")
	fs.StringVar(&o.SpawnLog, "spawn-log", "", "write the spawned gateway's output to `FILE` (default: shown only if it fails)")
	fs.IntVar(&o.Idle, "idle", 0, "instead of sending, hold `N` idle device connections and report the gateway's memory")
	fs.DurationVar(&o.Hold, "hold", 5*time.Second, "with --idle, hold the connections for `DURATION`")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "give up after `DURATION`")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	fs.BoolVar(&o.Straight, "straight", false, "the devices send straight to --cloud-url and --cloud-address, without the gateway: the baseline")
	fs.BoolVar(&o.NoConsumer, "no-consumer", false, "do not consume from --cloud-url: with --straight, into a broker that only counts")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: shadowgw-bench [flags] [--spawn BINARY -- ARGS...]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.SpawnArgs = fs.Args()
	switch {
	case len(o.SpawnArgs) > 0 && o.Spawn == "":
		return o, fmt.Errorf("arguments %q given without --spawn", o.SpawnArgs)
	case o.Devices < 1 && o.Idle == 0:
		return o, errors.New("--devices must be at least 1")
	case o.Messages < 0 || o.Size < 0 || o.Window < 1 || o.Rate < 0 || o.Idle < 0:
		return o, errors.New("--messages, --size, --rate and --idle must not be negative, --window at least 1")
	case o.Messages == 0 && o.Duration <= 0 && o.Idle == 0:
		return o, errors.New("--messages 0 needs --duration")
	case o.Straight && o.CloudURL == "":
		return o, errors.New("--straight needs --cloud-url and --cloud-address")
	case o.CloudURL != "" && o.CloudAddress == "":
		return o, errors.New("--cloud-url needs --cloud-address")
	case (o.User == "") != (o.PasswordFile == ""):
		return o, errors.New("--user and --password-file go together")
	case o.GatewayPID != 0 && o.Spawn != "":
		return o, errors.New("--gateway-pid and --spawn exclude each other")
	}
	return o, nil
}

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "mqtt" {
		return mqttMain(ctx, args[1:], stdout, stderr) // mqtt.go
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "shadowgw-bench:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	r, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "shadowgw-bench:", err)
		return 1
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "shadowgw-bench:", err)
		return 1
	}
	if r.Lost > 0 || r.Duplicated > 0 {
		return 3
	}
	return 0
}

// run carries out one measurement.
func run(ctx context.Context, o options) (*report, error) {
	r := &report{Options: o, Run: runID()}
	var gw *gatewayProc
	if o.Spawn != "" {
		var err error
		if gw, err = spawn(ctx, o.Spawn, o.SpawnArgs, o.SpawnLog, o.Addr); err != nil {
			return nil, err
		}
		defer gw.stop()
		o.GatewayPID = gw.pid()
	}
	if o.Idle > 0 {
		if err := holdIdle(ctx, o, r); err != nil {
			return nil, gw.explain(err)
		}
		return r, gw.stopErr()
	}

	var cons *consumer
	if o.CloudURL != "" && !o.NoConsumer {
		var err error
		if cons, err = startConsumer(ctx, o, r.Run); err != nil {
			return nil, gw.explain(err)
		}
		defer cons.close()
	}
	before := readProc(o.GatewayPID)
	res, err := sendAll(ctx, o, r.Run)
	if err != nil {
		return nil, gw.explain(err)
	}
	r.addSend(o, res)
	if cons != nil {
		arr := cons.wait(ctx, res.expected(o.Settled), o.CloudQuiet)
		r.addCloud(res, arr)
	}
	measured := r.Accepted
	if o.Settled {
		measured = r.Sent
	}
	r.Gateway = gatewayUsage(o.GatewayPID, before, readProc(o.GatewayPID), measured)
	return r, gw.stopErr()
}
