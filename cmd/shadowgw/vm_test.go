//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/shadowgw/shadowgw/uplink/cloudtest"
)

// TestVMPowerCuts cuts the power of a VM running the .deb under systemd, again and
// again, while go-amqp devices on the host send to the gateway in it, and checks that
// every message a device saw accepted reaches the cloud (RabbitMQ on the host). The VM
// is prepared by scripts/test-vm.sh, which sets SHADOWGW_VM to a directory holding the
// disk with the package installed, a script "boot" that execs qemu (SSH_PORT
// DEVICE_PORT CONSOLE_LOG), and the ssh key of root. A power cut is SIGKILL to qemu: the
// guest's page cache is lost, the disk keeps what the guest had written to it. The
// VM boots again from the same disk; a store damaged by a cut must be recovered at
// start (quarantine, salvage, log), never stop the service. SHADOWGW_VM_CUTS sets the
// number of cuts (default 3); SHADOWGW_VM_CUTS_FOR (a duration) stops cutting earlier
// once that much time has passed, for a long run that must end in time.
func TestVMPowerCuts(t *testing.T) {
	dir := os.Getenv("SHADOWGW_VM")
	if dir == "" {
		t.Skip("SHADOWGW_VM is not set: scripts/test-vm.sh runs this test")
	}
	cuts := 3
	if s := os.Getenv("SHADOWGW_VM_CUTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SHADOWGW_VM_CUTS=%q: want a positive number", s)
		}
		cuts = n
	}
	var cutFor time.Duration
	if s := os.Getenv("SHADOWGW_VM_CUTS_FOR"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("SHADOWGW_VM_CUTS_FOR=%q: want a positive duration", s)
		}
		cutFor = d
	}
	b := cloudtest.StartRabbitMQ(t)
	_, brokerPort, _ := net.SplitHostPort(b.Addr)
	vm := newVM(t, dir)

	// The uplink to RabbitMQ on the host's loopback, which qemu's user-mode network
	// shows the guest as 10.0.2.2; its certificate is for 127.0.0.1.
	wall, ready := vm.boot()
	boots, readies := []time.Duration{wall}, []time.Duration{ready} // qemu start → active; kernel start → READY=1
	ca, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	conf := "[edge]\nlisten = 0.0.0.0:5672\nallow-anonymous = true\n" +
		"[uplink]\nurl = amqps://10.0.2.2:" + brokerPort + "\nca = /etc/shadowgw/ca.pem\nserver-name = 127.0.0.1\n" +
		"user = " + b.User + "\npassword-file = /etc/shadowgw/uplink.password\naddress-prefix = /queue/\n" +
		"reconnect-min = 200ms\nreconnect-max = 2s\n"
	vm.run(string(ca), "cat >/etc/shadowgw/ca.pem")
	vm.run(b.Password+"\n", "install -m 640 -g shadowgw /dev/null /etc/shadowgw/uplink.password && cat >/etc/shadowgw/uplink.password")
	vm.run(conf, "cat >/etc/shadowgw/shadowgw.conf && shadowgw check --config /etc/shadowgw/shadowgw.conf && systemctl restart shadowgw")
	vm.waitDevices(3 * time.Minute)

	const devices, address = 4, "telemetry"
	acked := map[key]bool{}
	var recoveries int
	start := time.Now()
	for cycle := range cuts {
		if cutFor > 0 && cycle > 0 && time.Since(start) > cutFor {
			t.Logf("SHADOWGW_VM_CUTS_FOR=%v has passed: %d of %d cuts", cutFor, cycle, cuts)
			cuts = cycle
			break
		}
		if cycle > 0 {
			wall, ready := vm.boot()
			boots, readies = append(boots, wall), append(readies, ready)
			vm.waitDevices(5 * time.Minute)
			if n := vm.recoveries(); n > 0 {
				recoveries += n
				t.Logf("cycle %d: the store was recovered after the power cut:\n%s", cycle, vm.output("", "journalctl -b -u shadowgw --no-pager -o cat | grep -i 'damaged\\|recover\\|quarantin'"))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var wg sync.WaitGroup
		devs := make([]*device, devices)
		for i := range devs {
			devs[i] = &device{id: fmt.Sprintf("dev-%d", i)}
			wg.Go(func() { devs[i].send(ctx, vm.devices, address, cycle*1_000_000, 1_000_000, 200, 32) })
		}
		load := time.Duration(2000+rand.IntN(6000)) * time.Millisecond
		time.Sleep(load) // under load, then the power cut
		vm.cut()
		wg.Wait()
		cancel()
		n := 0
		for _, d := range devs {
			for _, s := range d.accepted {
				acked[key{d.id, int64(s)}] = true
			}
			n += len(d.accepted)
		}
		t.Logf("cycle %d: power cut after %v of load: %d messages accepted", cycle, load, n)
	}
	wall, ready = vm.boot()
	boots, readies = append(boots, wall), append(readies, ready)
	vm.waitDevices(5 * time.Minute)
	recoveries += vm.recoveries()
	t.Logf("%d power cuts in %v; %d messages accepted; qemu start to active: %v", cuts, time.Since(start).Round(time.Second), len(acked), boots)

	// Every accepted message reaches the cloud.
	got := map[key]int{}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		msgs := b.Drain(t, "/queue/"+address, 15*time.Second)
		for _, m := range msgs {
			k, err := check(t, m, 200)
			if err != nil {
				t.Fatal(err)
			}
			got[k]++
		}
		lost := 0
		for k := range acked {
			if got[k] == 0 {
				lost++
			}
		}
		if lost == 0 && len(msgs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never reached the cloud (%d received)\nstatus in the VM:\n%s",
				lost, len(acked), len(got), vm.output("", "shadowgw status"))
		}
	}
	dups, extra := 0, 0
	for k, n := range got {
		dups += n - 1
		if !acked[k] {
			extra++ // stored and forwarded, but the device never saw the outcome
		}
	}
	slices.Sort(readies)
	t.Logf("RESULT power cuts %d: accepted %d, lost 0, duplicates %d, forwarded without an outcome seen %d, store recoveries %d; boot to READY (kernel start to READY=1, %d boots): min %v, median %v, max %v",
		cuts, len(acked), dups, extra, recoveries, len(readies), readies[0], readies[len(readies)/2], readies[len(readies)-1])
}

// testVM is a qemu VM prepared by scripts/test-vm.sh.
type testVM struct {
	t            *testing.T
	dir, key     string
	ssh, devices string // host addresses forwarded to the guest's ports 22 and 5672
	sshPort      string
	cmd          *exec.Cmd
	exited       chan struct{}
	boots        int
}

func newVM(t *testing.T, dir string) *testVM {
	vm := &testVM{t: t, dir: dir, key: filepath.Join(dir, "id_ed25519"), ssh: freeAddr(t), devices: freeAddr(t)}
	_, vm.sshPort, _ = net.SplitHostPort(vm.ssh)
	t.Cleanup(func() {
		if vm.cmd != nil {
			vm.cut()
		}
	})
	return vm
}

// boot starts qemu and waits until the gateway in the guest is active; it returns
// the time from the start of qemu until the host saw it active, and the guest's
// boot-to-READY: systemd's monotonic timestamp of the unit becoming active
// (Type=notify: READY=1 received), counted from the kernel's start.
func (vm *testVM) boot() (wall, ready time.Duration) {
	vm.t.Helper()
	_, devPort, _ := net.SplitHostPort(vm.devices)
	console := filepath.Join(vm.dir, fmt.Sprintf("console-%d.log", vm.boots))
	vm.boots++
	vm.cmd = exec.Command(filepath.Join(vm.dir, "boot"), vm.sshPort, devPort, console)
	// Should the test binary die (go test -timeout), the VM goes with it.
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	vm.cmd.Stdout, vm.cmd.Stderr = &out, &out
	started := time.Now()
	if err := vm.cmd.Start(); err != nil {
		vm.t.Fatal(err)
	}
	vm.exited = make(chan struct{})
	go func() {
		vm.cmd.Wait()
		close(vm.exited)
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		if err := vm.try("", "systemctl is-active --quiet shadowgw"); err == nil {
			break
		}
		select {
		case <-vm.exited:
			vm.t.Fatalf("qemu exited: %s", out.String())
		default:
		}
		tail, _ := os.ReadFile(console)
		if bytes.Contains(tail, []byte("You are in emergency mode")) {
			vm.t.Fatalf("the VM is in emergency mode after boot %d; console:\n%s", vm.boots, lastLines(string(tail), 40))
		}
		if time.Now().After(deadline) {
			vm.t.Fatalf("shadowgw not active within 10 min of the boot; console:\n%s", lastLines(string(tail), 40))
		}
		time.Sleep(time.Second)
	}
	wall = time.Since(started).Round(100 * time.Millisecond)
	out2 := vm.output("", "systemctl show -P ActiveEnterTimestampMonotonic shadowgw")
	us, err := strconv.ParseInt(out2, 10, 64)
	if err != nil || us <= 0 {
		vm.t.Fatalf("no ActiveEnterTimestampMonotonic for shadowgw in the VM: %q", out2)
	}
	return wall, (time.Duration(us) * time.Microsecond).Round(100 * time.Millisecond)
}

// waitDevices waits until a device can open an AMQP connection through the
// forwarded port.
func (vm *testVM) waitDevices(limit time.Duration) {
	vm.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := amqp.Dial(ctx, "amqp://"+vm.devices, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
		cancel()
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			vm.t.Fatalf("no AMQP connection to the gateway in the VM within %v: %v\n%s", limit, err,
				vm.output("", "systemctl --no-pager status shadowgw; journalctl -b -u shadowgw --no-pager | tail -n 30"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// cut kills qemu: the power is gone.
func (vm *testVM) cut() {
	vm.cmd.Process.Signal(syscall.SIGKILL)
	<-vm.exited
	vm.cmd = nil
}

// recoveries returns how many store recoveries the gateway logged in this boot.
func (vm *testVM) recoveries() int {
	out := vm.output("", "journalctl -b -u shadowgw --no-pager -o cat | grep -ci 'store file was damaged\\|recovered\\|quarantin' || true")
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

func (vm *testVM) sshCmd(stdin, command string) *exec.Cmd {
	cmd := exec.Command("ssh", "-i", vm.key, "-p", vm.sshPort, "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
		"-o", "BatchMode=yes", "root@127.0.0.1", command)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func (vm *testVM) try(stdin, command string) error {
	return vm.sshCmd(stdin, command).Run()
}

// run runs command in the guest as root and fails the test if it fails.
func (vm *testVM) run(stdin, command string) {
	vm.t.Helper()
	if out, err := vm.sshCmd(stdin, command).CombinedOutput(); err != nil {
		vm.t.Fatalf("in the VM: %s: %v\n%s", command, err, out)
	}
}

// output returns the output of command in the guest, or the error.
func (vm *testVM) output(stdin, command string) string {
	out, err := vm.sshCmd(stdin, command).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s(%s: %v)", out, command, err)
	}
	return strings.TrimSpace(string(out))
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
