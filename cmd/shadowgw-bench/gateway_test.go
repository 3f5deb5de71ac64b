package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fillStore makes a store of perDevice messages of size bytes from each of the load
// tool's 4 devices, sent to address through a gateway bin without an uplink
// (durable: the load tool's --durable flag), and returns its directory: a drain
// starts a gateway with an uplink on it.
func fillStore(t *testing.T, bin, address string, perDevice, size int, durable string) string {
	t.Helper()
	addr := freeAddr(t)
	data := filepath.Join(t.TempDir(), "data")
	if _, code := bench(t, durable, "--devices", "4", "--messages", strconv.Itoa(perDevice), "--size", strconv.Itoa(size), "--address", address,
		"--spawn", bin, "--addr", addr, "--", "run", "--listen", addr, "--data", data, "--metrics="); code != 0 {
		t.Fatalf("filling a store for %s with %s: exit %d", address, bin, code)
	}
	return data
}

// writeConf writes a gateway configuration file of text in dir and returns its path.
func writeConf(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// gatewayProcess is a gateway started by startGateway.
type gatewayProcess struct {
	cmd  *exec.Cmd
	addr string
	log  *os.File
}

func (g *gatewayProcess) pid() int { return g.cmd.Process.Pid }

// startGateway starts bin on the store in data (a new one if data is empty) with
// args added to its command line (the uplink's), and waits until it listens for
// devices.
func startGateway(t *testing.T, bin, data string, args ...string) *gatewayProcess {
	t.Helper()
	if data == "" {
		data = filepath.Join(t.TempDir(), "data")
	}
	g := &gatewayProcess{addr: freeAddr(t)}
	g.cmd = exec.Command(bin, append([]string{"run", "--listen", g.addr, "--data", data, "--metrics="}, args...)...)
	var err error
	if g.log, err = os.Create(filepath.Join(t.TempDir(), "gateway.log")); err != nil {
		t.Fatal(err)
	}
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitListening(g.addr, 15*time.Second); err != nil {
		g.stop()
		t.Fatal(err)
	}
	return g
}

// stop ends the gateway with SIGTERM (SIGKILL after 30 s) and waits for it.
func (g *gatewayProcess) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	go func() { <-ctx.Done(); _ = g.cmd.Process.Kill() }()
	_ = g.cmd.Wait()
	cancel()
	g.log.Close()
}

// waitListening waits until addr accepts TCP connections.
func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening within %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling, with the deadline above
	}
}
