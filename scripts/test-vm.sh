#!/usr/bin/env bash
# test-vm.sh boots the .deb on an emulated Raspberry Pi-class machine with
# systemd as PID 1 and proves the service there: a Debian VM built by
# scripts/vm-image.sh (arm64 under qemu-system-aarch64 -M virt, TCG), the
# package installed by the first-boot unit of scripts/pi-image.sh, then
#   - shadowgw.service is active (running) through READY=1 (Type=notify);
#   - systemctl reload (SIGHUP) applies a new log level;
#   - a main process stopped with SIGSTOP is killed by the watchdog and restarted;
#   - systemd-analyze security; /etc and /home are read-only and the state
#     directory writable inside the running service's own mount namespace;
#   - the journal has the service's lines with their levels (PRIORITY=);
#   - apt purge removes it cleanly, and it installs again;
#   - power cuts: cmd/shadowgw TestVMPowerCuts kills qemu (SIGKILL) under load
#     from devices on the host, boots the same disk again, and checks that every
#     message a device saw accepted reaches RabbitMQ on the host.
# The VM reaches the host only through qemu's user-mode network: the host
# forwards a loopback port to the gateway's port 5672 and one to ssh; the
# gateway reaches RabbitMQ on the host's loopback as 10.0.2.2.
#
# Usage: scripts/test-vm.sh   (root, or sudo; CI runs it after the .deb tests)
# Environment: VM_ARCH (arm64), POWER_CUTS (3), SHADOWGW_VM_CUTS_FOR (a duration
# after which no new cut starts), SHADOWGW_CACHE, KEEP=1 to keep the work
# directory (disk, console logs).
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${VM_ARCH:-arm64}
cuts=${POWER_CUTS:-3}
start=$SECONDS
fail() {
  echo "test-vm: FAIL: $*" >&2
  [ -z "${work:-}" ] || [ ! -f "$work/console.log" ] || { echo "-- console (last 40 lines)" >&2; tail -n 40 "$work/console.log" >&2; }
  exit 1
}
step() { echo "-- [$((SECONDS - start))s] $*"; }

for tool in qemu-system-aarch64 ssh ssh-keygen mcopy sfdisk mke2fs python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-test-deps.sh"
done

step "VM image ($arch, scripts/vm-image.sh; cached)"
vmdir=$(scripts/vm-image.sh "$arch") || fail "scripts/vm-image.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/shadowgw-test-vm.XXXXXX")
qemu_pid=
cleanup() {
  if [ -n "$qemu_pid" ]; then kill -KILL "$qemu_pid" 2>/dev/null || true; fi
  if [ "${KEEP:-}" = 1 ]; then echo "test-vm: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# A signal (CI's timeout) ends the script through the EXIT trap: qemu goes too.
trap 'exit 143' TERM INT HUP

step "the $arch package (packaging/build-deb.sh, as make deb) and the first-boot image (scripts/pi-image.sh)"
deb=$(packaging/build-deb.sh "$arch" "$work" 2>"$work/build.log") || { cat "$work/build.log"; fail "build-deb.sh"; }
# The packaged configuration, with devices accepted on the VM's network (qemu
# forwards the host's port to it).
sed 's/^listen = 127\.0\.0\.1:5672$/listen = 0.0.0.0:5672/' packaging/shadowgw.conf >"$work/shadowgw.conf"
grep -q '^listen = 0.0.0.0:5672$' "$work/shadowgw.conf" || fail "no [edge] listen line in packaging/shadowgw.conf"
# pi-image.sh wants a Pi's boot partition: the kernel command line as
# cmdline.txt, which is also where this script reads it from.
cp --sparse=always "$vmdir/disk.img" "$work/base.img"
# quiet: the emulated serial console is slow; the journal has it all.
echo "root=/dev/vda2 ro rootwait fsck.repair=yes console=ttyAMA0 quiet" >"$work/cmdline.txt"
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/base.img@@$((16384 * 512))" "$work/cmdline.txt" ::/cmdline.txt
scripts/pi-image.sh "$work/base.img" "$deb" "$work/shadowgw.conf" "$work/disk.img" >"$work/pi-image.log" 2>&1 ||
  { cat "$work/pi-image.log"; fail "scripts/pi-image.sh"; }
rm -f "$work/base.img"
cp "$vmdir/vmlinuz" "$vmdir/initrd.img" "$work/"
install -m 600 "$vmdir/id_ed25519" "$work/id_ed25519"

# boot, as a script: TestVMPowerCuts runs it too. It execs qemu, so its pid is
# qemu's. Usage: boot SSH_PORT DEVICE_PORT CONSOLE_LOG
cat >"$work/boot" <<BOOT
#!/bin/sh
dir=\$(dirname "\$0")
exec qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 \\
  -display none -monitor none -serial "file:\$3" \\
  -kernel "\$dir/vmlinuz" -initrd "\$dir/initrd.img" -append "$(cat "$work/cmdline.txt")" \\
  -drive "file=\$dir/disk.img,format=raw,if=virtio,cache=writeback" \\
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:\$1-:22,hostfwd=tcp:127.0.0.1:\$2-:5672" \\
  -device virtio-net-pci,netdev=n0,romfile= -device virtio-rng-pci
BOOT
chmod 755 "$work/boot"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ssh_port=$(free_port)
dev_port=$(free_port)
vm() {
  ssh -i "$work/id_ed25519" -p "$ssh_port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=10 -o BatchMode=yes root@127.0.0.1 "$@"
}
boot() {
  : >"$work/console.log"
  "$work/boot" "$ssh_port" "$dev_port" "$work/console.log" >>"$work/qemu.log" 2>&1 &
  qemu_pid=$!
  local t0=$SECONDS
  until vm true 2>/dev/null; do
    kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited: $(cat "$work/qemu.log")"
    ((SECONDS - t0 < 600)) || fail "no ssh into the VM within 10 min"
    sleep 2
  done
  step "ssh answers $((SECONDS - t0))s after qemu started"
}
poweroff() {
  vm systemctl poweroff >/dev/null 2>&1 || true
  local i
  for ((i = 0; i < 300; i++)); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$qemu_pid" 2>/dev/null && fail "the VM did not power off within 5 min"
  wait "$qemu_pid" || true
  qemu_pid=
}
# until_vm SECONDS WHAT CMD: polls CMD in the VM until it succeeds.
until_vm() {
  local limit=$1 what=$2 t0=$SECONDS
  shift 2
  until vm "$@" >/dev/null 2>&1; do
    ((SECONDS - t0 < limit)) || fail "$what (not within ${limit}s)"
    sleep 1
  done
}
prop() { vm systemctl show -P "$1" shadowgw.service; }

step "first boot: installs the package from the boot partition"
boot
until_vm 600 "the first-boot install did not finish" grep -q "'^== \\(OK\\|FAILED\\)'" /boot/firmware/shadowgw-firstboot.log
vm cat /boot/firmware/shadowgw-firstboot.log >"$work/firstboot.log"
grep -q '^== OK' "$work/firstboot.log" || { cat "$work/firstboot.log"; fail "first-boot install"; }
[ "$(vm systemctl is-enabled shadowgw-firstboot.service 2>/dev/null || true)" = disabled ] ||
  fail "shadowgw-firstboot.service did not disable itself"

step "active (running) through READY=1"
[ "$(prop Type)" = notify ] || fail "Type is not notify"
until_vm 120 "shadowgw.service is not active" systemctl is-active --quiet shadowgw.service
vm systemctl --no-pager status shadowgw.service >"$work/status.txt" || true
grep -q 'Active: active (running)' "$work/status.txt" || { cat "$work/status.txt"; fail "not active (running)"; }
head -n 5 "$work/status.txt"
[ "$(prop User)" = shadowgw ] || fail "User is not shadowgw"
vm 'stat -c %U "/proc/$(systemctl show -P MainPID shadowgw)"' | grep -qx shadowgw || fail "the main process does not run as shadowgw"
echo "ready $(( $(prop ActiveEnterTimestampMonotonic) / 1000 )) ms after the kernel started (first boot, with the install)"

step "journald: journalctl -p warning finds the service's warnings, and only those"
# The packaged configuration has no uplink: the daemon warns about it at start.
vm "journalctl -u shadowgw -b -p warning --no-pager -o cat" >"$work/warnings.txt" || true
grep -q 'level=WARN.*no uplink configured' "$work/warnings.txt" || { cat "$work/warnings.txt"; fail "journalctl -p warning does not find the 'no uplink configured' warning"; }
if grep -q 'level=INFO\|level=DEBUG' "$work/warnings.txt"; then cat "$work/warnings.txt"; fail "journalctl -p warning shows info or debug lines"; fi
echo "journalctl -p warning: $(grep -c . "$work/warnings.txt") line(s), e.g. $(head -n 1 "$work/warnings.txt" | cut -c1-120)"

step "systemctl reload applies a new log level"
pid=$(prop MainPID)
vm "sed -i 's/^level = info\$/level = debug/' /etc/shadowgw/shadowgw.conf"
vm systemctl reload shadowgw.service || fail "systemctl reload"
until_vm 60 "no 'configuration reloaded' in the journal" \
  "journalctl -u shadowgw -b --no-pager -o cat | grep -q 'configuration reloaded'"
[ "$(prop MainPID)" = "$pid" ] || fail "reload restarted the service"
vm "journalctl -u shadowgw -b --no-pager -o cat | grep 'configuration reloaded'" | grep -q 'applied="\[log\] level"' ||
  fail "the reload did not apply [log] level"
# A debug line: a device connection through the forwarded port that closes
# before the protocol header (edge logs it at debug only).
t0=$SECONDS
until vm "journalctl -u shadowgw -b --no-pager -o cat | grep -q 'level=DEBUG'" 2>/dev/null; do
  ((SECONDS - t0 < 120)) || fail "no debug line in the journal after the reload (not within 120s)"
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10).close()' "$dev_port" || true
  sleep 2
done
echo "debug lines after the reload: $(vm "journalctl -u shadowgw -b --no-pager -o cat | grep -m1 'level=DEBUG'" | cut -c1-120)"

step "journald keeps the levels (PRIORITY)"
vm journalctl -u shadowgw -b --no-pager -o json --output-fields=PRIORITY,MESSAGE >"$work/journal.json"
python3 - "$work/journal.json" <<'PY' || fail "the journal's PRIORITY does not follow the log level"
import json, sys
want = {"DEBUG": "7", "INFO": "6", "WARN": "4", "ERROR": "3"}
seen, bad = {}, []
for line in open(sys.argv[1]):
    e = json.loads(line)
    m = e.get("MESSAGE")
    if not isinstance(m, str) or " level=" not in m:
        continue
    lvl = m.split(" level=", 1)[1].split(" ", 1)[0]
    if lvl in want:
        seen[lvl] = seen.get(lvl, 0) + 1
        if e.get("PRIORITY") != want[lvl]:
            bad.append((e.get("PRIORITY"), m[:100]))
print("journal lines by level:", seen)
if bad or "INFO" not in seen or "DEBUG" not in seen:
    print("lines whose PRIORITY is not their level:", len(bad), bad[:3])
    sys.exit(1)
PY

step "watchdog: a stopped main process is killed and restarted"
pid=$(prop MainPID) restarts=$(prop NRestarts)
vm kill -STOP "$pid"
t0=$SECONDS
until_vm 180 "the watchdog did not restart the service" \
  "[ \"\$(systemctl show -P NRestarts shadowgw)\" -gt $restarts ] && systemctl is-active --quiet shadowgw"
echo "restarted $((SECONDS - t0))s after SIGSTOP (WatchdogSec=$(prop WatchdogUSec))"
[ "$(prop MainPID)" != "$pid" ] || fail "same main process after the watchdog"
vm "journalctl -u shadowgw -b --no-pager -o cat | grep -i 'watchdog timeout'" || fail "no watchdog timeout in the journal"
vm "journalctl -u shadowgw -b --no-pager -o cat | grep -q '^goroutine '" || fail "no goroutine dump (SIGABRT) in the journal"

step "sandbox: systemd-analyze security, and what the running service may write"
vm systemd-analyze security --no-pager shadowgw.service >"$work/security.txt" 2>&1 || true
grep 'Overall exposure level' "$work/security.txt" || { cat "$work/security.txt"; fail "systemd-analyze security"; }
echo "(the whole report: $work/security.txt with KEEP=1)"
# nsenter into the main process's mount namespace, as the service's user and
# groups: what the service itself sees, not a copy of its settings.
pid=$(prop MainPID)
sandbox() { vm "nsenter -t $pid -m -S \$(id -u shadowgw) -G \$(id -g shadowgw) -- sh -c '$1' 2>&1"; }
for path in /etc/shadowgw/probe /etc/probe /home/probe /usr/probe /root/probe /var/lib/probe; do
  if out=$(sandbox "echo x >$path"); then fail "the service can write $path"; fi
  echo "not writable: $path ($out)"
done
sandbox "echo x >/var/lib/shadowgw/probe && rm /var/lib/shadowgw/probe" || fail "the service cannot write its state directory"
sandbox "echo x >/tmp/probe" || fail "the service has no /tmp"
vm "[ ! -e /tmp/probe ]" || fail "the service's /tmp is not private"
for path in /etc/probe /home/probe /usr/probe /root/probe; do
  vm "nsenter -t $pid -m -- sh -c 'echo x >$path'" 2>/dev/null && fail "$path is writable for root in the service's namespace"
done
vm "nsenter -t $pid -m -- ls -A /home" | grep -q . && fail "/home is visible to the service"
echo "writable: /var/lib/shadowgw, a private /tmp; /etc, /home, /usr, /root read-only even for root there; /home empty"
# A sensor's device node: vm-image.sh makes the group i2c (as Raspberry Pi OS
# has it) before the package is installed, so the postinst puts the user in it.
# The node is the null device under a sensor's name, root:i2c 0660 as
# Raspberry Pi OS's udev rule makes /dev/i2c-*; read with the service's own
# uid and groups (from /proc) in its mount namespace.
vm "id -nG shadowgw" | grep -qw i2c || fail "the postinst did not put shadowgw in the group i2c"
vm "rm -f /dev/i2c-sensor && mknod -m 0660 /dev/i2c-sensor c 1 3 && chgrp i2c /dev/i2c-sensor"
groups=$(vm "awk '/^Groups:/ { \$1 = \"\"; gsub(/^ +| +\$/, \"\"); gsub(/ +/, \",\"); print }' /proc/$pid/status")
echo "the service's supplementary groups: $groups ($(vm "getent group i2c | cut -d: -f1,3"))"
vm "nsenter -t $pid -m -- setpriv --reuid=\$(id -u shadowgw) --regid=\$(id -g shadowgw) --groups=$groups -- sh -c 'head -c 1 /dev/i2c-sensor >/dev/null'" ||
  fail "the service cannot read a device node of the group i2c"
if vm "nsenter -t $pid -m -- setpriv --reuid=\$(id -u shadowgw) --regid=\$(id -g shadowgw) --clear-groups -- sh -c 'head -c 1 /dev/i2c-sensor >/dev/null' 2>/dev/null"; then
  fail "the node is readable without the group i2c: the check above proves nothing"
fi
vm rm -f /dev/i2c-sensor
echo "readable through the sandbox: a root:i2c 0660 device node (and not without the group)"

step "apt purge removes it cleanly; it installs again"
vm DEBIAN_FRONTEND=noninteractive apt-get purge -y shadowgw >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "apt-get purge"; }
vm 'for p in /proc/[0-9]*; do [ "$(stat -c %U "$p" 2>/dev/null)" != shadowgw ] || exit 1; done' ||
  fail "a process of the user shadowgw survived the purge"
for path in /usr/bin/shadowgw /etc/shadowgw /var/lib/shadowgw /etc/systemd/system/shadowgw.service \
  /etc/systemd/system/multi-user.target.wants/shadowgw.service; do
  vm "[ ! -e $path ] && [ ! -L $path ]" || fail "$path is still there after apt purge"
done
vm "systemctl list-unit-files shadowgw.service | grep -q shadowgw" && fail "systemd still knows shadowgw.service"
vm "dpkg -s shadowgw" >/dev/null 2>&1 && fail "dpkg still lists shadowgw"
vm "dpkg -i /boot/firmware/shadowgw/shadowgw.deb" >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; fail "dpkg -i after purge"; }
until_vm 120 "not active after the reinstall" systemctl is-active --quiet shadowgw.service
poweroff

step "power cuts: $cuts (cmd/shadowgw TestVMPowerCuts)"
# A cycle takes about 70 s on two shared cores, a slow boot up to 3 min.
SHADOWGW_VM="$work" SHADOWGW_VM_CUTS="$cuts" SHADOWGW_REQUIRE_PEERS=1 \
  go test -count=1 -timeout "$((cuts * 3 + 20))m" -run '^TestVMPowerCuts$' -v ./cmd/shadowgw/ 2>&1 | tee "$work/powercuts.log" |
  grep -E '^(=== RUN|--- |PASS|FAIL|ok )|vm_test.go' || true
grep -q '^--- PASS: TestVMPowerCuts' "$work/powercuts.log" || { tail -n 60 "$work/powercuts.log"; fail "power cuts"; }
step "test-vm: all passed in $((SECONDS - start))s"
