package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux
// architecture Go supports, the Raspberry Pi's included.
const userHZ = 100

// procSample is a reading of a process's memory and CPU time from /proc.
type procSample struct {
	ok      bool
	at      time.Time
	rss     uint64 // VmRSS, bytes
	peakRSS uint64 // VmHWM, bytes
	anon    uint64 // RssAnon, bytes: RSS less file-backed and shared pages
	cpu     time.Duration
	// From /proc/PID/io: system calls that read and wrote, and the bytes they moved
	// (sockets included). Zero where the file cannot be read (another user's process).
	reads, writes           uint64
	readBytes, writtenBytes uint64
}

// readProc reads /proc/PID/status and /proc/PID/stat; pid 0 or a failed read gives a
// sample that is not ok.
func readProc(pid int) procSample {
	s := procSample{at: time.Now()}
	if pid == 0 {
		return s
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s
	}
	for _, line := range strings.Split(string(status), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || name != "VmRSS" && name != "VmHWM" && name != "RssAnon" {
			continue
		}
		kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s
		}
		switch name {
		case "VmRSS":
			s.rss = kib << 10
		case "VmHWM":
			s.peakRSS = kib << 10
		default:
			s.anon = kib << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s
	}
	// The command name, field 2, is in parentheses and may hold blanks: count fields
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s
	}
	s.cpu = time.Duration(utime+stime) * time.Second / userHZ
	s.ok = true
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(io), "\n") {
			name, v, _ := strings.Cut(line, ": ")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch name {
			case "syscr":
				s.reads = n
			case "syscw":
				s.writes = n
			case "rchar":
				s.readBytes = n
			case "wchar":
				s.writtenBytes = n
			}
		}
	}
	return s
}

// gatewayProc is a gateway started by --spawn.
type gatewayProc struct {
	cmd    *exec.Cmd
	out    *tail
	log    *os.File
	exited chan struct{}
	once   sync.Once
	err    error // the exit, after stop
}

// spawn starts bin with args and waits until addr accepts connections.
func spawn(ctx context.Context, bin string, args []string, logPath, addr string) (*gatewayProc, error) {
	g := &gatewayProc{out: &tail{max: 8 << 10}, exited: make(chan struct{})}
	var w io.Writer = g.out
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		g.log = f
		w = io.MultiWriter(f, g.out)
	}
	g.cmd = exec.Command(bin, args...)
	g.cmd.Stdout, g.cmd.Stderr = w, w
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	go func() {
		g.cmd.Wait()
		close(g.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return g, nil
		}
		select {
		case <-g.exited:
			g.stop()
			return nil, fmt.Errorf("spawn: the gateway exited at start (%v):\n%s", g.cmd.ProcessState, g.out)
		case <-ctx.Done():
			g.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("spawn: the gateway did not listen on %s within 15s (does --addr match its --listen?):\n%s", addr, g.out)
		}
	}
}

func (g *gatewayProc) pid() int { return g.cmd.Process.Pid }

// stop ends the gateway with SIGTERM, or SIGKILL after 20 s, and waits for it. It may be
// called more than once.
func (g *gatewayProc) stop() {
	if g == nil {
		return
	}
	g.once.Do(func() {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(20 * time.Second):
			g.cmd.Process.Kill()
			<-g.exited
			g.err = errors.New("the gateway did not stop within 20s of SIGTERM")
		}
		if g.err == nil && !g.cmd.ProcessState.Success() {
			g.err = fmt.Errorf("the gateway exited with %v", g.cmd.ProcessState)
		}
		if g.log != nil {
			g.log.Close()
		}
	})
}

// stopErr stops the gateway and returns an error, with its last output, if it did not
// exit cleanly. A nil gatewayProc gives nil.
func (g *gatewayProc) stopErr() error {
	if g == nil {
		return nil
	}
	g.stop()
	if g.err != nil {
		return fmt.Errorf("%w:\n%s", g.err, g.out)
	}
	return nil
}

// explain adds the spawned gateway's last output to err.
func (g *gatewayProc) explain(err error) error {
	if g == nil || err == nil {
		return err
	}
	return fmt.Errorf("%w\ngateway output:\n%s", err, g.out)
}

// tail keeps the last max bytes written to it. It is safe for concurrent use.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
