#!/usr/bin/env bash
# vm-image.sh builds the test VM of scripts/test-vm.sh: a Debian root of the
# given architecture with systemd as PID 1, openssh for the test driver and
# systemd-networkd on qemu's user-mode network, Debian's kernel, and a small
# initramfs made here. The disk has the layout of Raspberry Pi OS (MBR; FAT
# "bootfs" mounted at /boot/firmware; ext4 "rootfs"), so scripts/pi-image.sh
# writes the first-boot install into it as into a Pi image. Built without loop
# mounts (sfdisk, mkfs.fat --offset, mke2fs -d), from Debian's packages only.
#
# Usage: scripts/vm-image.sh [ARCH]   (default arm64; prints the directory)
#
# Why it is quick (6 min on a loaded 2-core machine with test-deb.sh's cached
# root, 13 min without): first, when scripts/test-deb.sh's cached arm64 root
# exists (minbase and adduser, configured), debootstrap only downloads, and the
# packages that root lacks are installed into it with dpkg under qemu-user,
# instead of a whole second stage (VM_FULL_SECOND_STAGE=1 forces that). Then,
# the kernel package is not installed in the root. Its postinst would build an initrd with
# initramfs-tools, which under emulation takes most of an hour. Instead the
# kernel and busybox-static packages that debootstrap downloaded are unpacked
# on the host (dpkg-deb -x), the kernel's modules are copied into the root
# (depmod in the root), and the initramfs is written here: busybox, the modules
# the disk needs (virtio_pci, virtio_blk, ext4 and their dependencies from
# modules.dep, loaded in that order) and an /init that mounts the root
# read-only and switch_roots to systemd, which checks and remounts it as a
# Pi's initramfs-less boot does.
#
# The result is cached in $SHADOWGW_CACHE (default ~/.cache/shadowgw) under a
# name keyed by this script's content, the suite and the architecture:
# vm-SUITE-ARCH-KEY/{disk.img,vmlinuz,initrd.img,id_ed25519}.
# Needs root (debootstrap, chroot), and sudo otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-arm64}
suite=${DEB_SUITE:-bookworm}
cache=${SHADOWGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shadowgw}
key=$(cat "$0" | sha256sum | cut -c1-12)
out=$cache/vm-$suite-$arch-$key

if [ -s "$out/disk.img" ]; then
  echo "$out"
  exit 0
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
fail() {
  echo "vm-image: FAIL: $*" >&2
  # The work directory goes: keep the log.
  [ -z "${log:-}" ] || [ ! -f "$log" ] || { cp "$log" "$cache/vm-build-failed.log" && echo "vm-image: log: $cache/vm-build-failed.log" >&2; }
  exit 1
}
case "$arch" in arm64) qemu=aarch64 ;; armhf) qemu=arm ;; *) fail "unknown architecture $arch (arm64, armhf)" ;; esac
kernel_pkg=linux-image-$arch
[ "$arch" = armhf ] && kernel_pkg=linux-image-armmp-lpae
for tool in debootstrap dpkg-deb sfdisk mkfs.fat mke2fs e2fsck ssh-keygen python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-test-deps.sh"
done

[ -e /proc/sys/fs/binfmt_misc/register ] ||
  as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qemu" ]; then
  as_root sh -c "cat /usr/lib/binfmt.d/qemu-$qemu.conf >/proc/sys/fs/binfmt_misc/register"
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/vm-build.XXXXXX")
# debootstrap's second stage mounts /proc and /sys in the root and leaves them
# mounted when it is interrupted: unmount before deleting.
cleanup() {
  local m
  for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
    as_root umount -l "$m" || true
  done
  as_root rm -rf --one-file-system "$work"
}
trap cleanup EXIT
root=$work/root
log=$work/debootstrap.log
t0=$SECONDS
step() { echo "vm-image: [$((SECONDS - t0))s] $*" >&2; }

step "building the $suite $arch VM in $out (log: $log)"
# e2fsprogs: systemd-fsck checks the root after a power cut.
pkgs=systemd,systemd-sysv,udev,dbus,kmod,e2fsprogs,adduser,openssh-server,$kernel_pkg,busybox-static
as_root debootstrap --foreign --variant=minbase --arch="$arch" --include="$pkgs" "$suite" "$root" >"$log" 2>&1 ||
  { tail -n 20 "$log" >&2; fail "debootstrap"; }

# ---- the kernel and busybox: unpacked here, left out of the second stage
step "unpacking the kernel and busybox-static on the host"
archives=$root/var/cache/apt/archives
kdeb=$(find "$archives" -name 'linux-image-[0-9]*.deb' | head -n 1)
bdeb=$(find "$archives" -name 'busybox-static_*.deb' | head -n 1)
[ -n "$kdeb" ] && [ -n "$bdeb" ] || fail "debootstrap did not download the kernel and busybox-static"
dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/busybox"
kver=$(basename "$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)")
[ -n "$kver" ] && [ -f "$work/kernel/boot/vmlinuz-$kver" ] || fail "no kernel in $(basename "$kdeb")"
# What only the kernel package and its initrd generator need.
drop=" $(basename "$kdeb" | cut -d_ -f1) $kernel_pkg linux-base initramfs-tools initramfs-tools-core klibc-utils libklibc busybox-static cpio "
base=
for p in $(cat "$root/debootstrap/base"); do
  [[ $drop == *" $p "* ]] || base="$base $p"
done
echo "${base# }" | as_root tee "$root/debootstrap/base" >/dev/null
as_root rm -f "$kdeb" "$bdeb"

base_tar=$cache/rootfs-$suite-$arch.tar.gz
if [ -s "$base_tar" ] && [ "${VM_FULL_SECOND_STAGE:-}" != 1 ]; then
  # scripts/test-deb.sh's cached root (minbase and adduser, configured) saves
  # the second stage's required packages: only what it lacks, or has in
  # another version, is installed there, by dpkg, under qemu-user.
  step "installing the VM's packages into test-deb.sh's cached root $(basename "$base_tar") (under qemu-$qemu)"
  stage1=$work/stage1
  as_root mv "$root" "$stage1"
  as_root mkdir "$root"
  as_root tar -C "$root" -xzf "$base_tar"
  as_root mkdir -p "$root/var/cache/shadowgw-vm"
  python3 - "$root/var/lib/dpkg/status" "$stage1/var/cache/apt/archives" "$root/var/cache/shadowgw-vm" "$drop" <<'CHOOSE' || fail "choosing the packages"
import os, shutil, subprocess, sys
status, archives, dest, drop = sys.argv[1:]
drop = drop.split()
have = {}
for para in open(status).read().split("\n\n"):
    f = dict(l.split(": ", 1) for l in para.splitlines() if ": " in l and not l.startswith(" "))
    if f.get("Status") == "install ok installed":
        have[f["Package"]] = f["Version"]
n = 0
for deb in sorted(os.listdir(archives)):
    if not deb.endswith(".deb"):
        continue
    p = os.path.join(archives, deb)
    pkg, ver = subprocess.check_output(["dpkg-deb", "--show", "--showformat=${Package} ${Version}", p], text=True).split()
    if pkg not in drop and have.get(pkg) != ver:
        shutil.copy(p, dest)
        n += 1
print("vm-image:", n, "packages to install", file=sys.stderr)
CHOOSE
  # No daemon starts in the chroot (ssh's postinst would start sshd).
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$root/usr/sbin/policy-rc.d" >/dev/null
  as_root chmod 755 "$root/usr/sbin/policy-rc.d"
  as_root mount -t proc proc "$root/proc"
  # One dpkg -i of them all, as debootstrap does, leaves a package whose
  # Pre-Depends are in the same set (systemd: libssl3; systemd-sysv: systemd)
  # for a second round, once those are configured.
  as_root chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c '
    for round in 1 2 3 4; do
      echo "== dpkg -i, round $round"
      dpkg -i --force-confold --skip-same-version /var/cache/shadowgw-vm/*.deb && exit 0
    done
    exit 1' >>"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; fail "dpkg -i of the VM's packages"; }
  as_root chroot "$root" dpkg --audit >>"$log" 2>&1 || fail "dpkg --audit in the VM's root"
  as_root umount "$root/proc"
  as_root rm -rf "$root/usr/sbin/policy-rc.d" "$root/var/cache/shadowgw-vm" "$stage1"
else
  step "debootstrap --second-stage (under qemu-$qemu)"
  as_root chroot "$root" /debootstrap/debootstrap --second-stage >>"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; fail "debootstrap --second-stage"; }
fi

# ---- the kernel's modules in the root (udev loads virtio-net, i2c-dev, ...)
step "modules and initramfs"
as_root mkdir -p "$root/usr/lib/modules"
as_root cp -a "$work/kernel/lib/modules/$kver" "$root/usr/lib/modules/"
as_root chroot "$root" depmod "$kver" >>"$log" 2>&1 || fail "depmod in the root"

# ---- the initramfs
ird=$work/initramfs
mkdir -p "$ird/bin" "$ird/lib/modules"
cp "$work/busybox/bin/busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
# The disk's modules, dependencies first (modules.dep lists a module's
# dependencies in the reverse of their load order, as modprobe reads it).
# crc32c_generic: ext4's metadata checksums (a soft dependency, not in
# modules.dep).
python3 - "$root/usr/lib/modules/$kver" "$ird" <<'PY' || fail "initramfs modules"
import os, shutil, sys
mdir, ird = sys.argv[1], sys.argv[2]
deps = {}
for line in open(os.path.join(mdir, "modules.dep")):
    mod, _, rest = line.strip().partition(":")
    deps[mod] = rest.split()
byname = {os.path.basename(m)[: -len(".ko")].replace("-", "_"): m for m in deps}
order = []
def load(m):
    if m in order:
        return
    for d in reversed(deps[m]):
        load(d)
    order.append(m)
for name in ["crc32c_generic", "virtio_pci", "virtio_blk", "ext4"]:
    if name not in byname:
        sys.exit("no module " + name)
    load(byname[name])
with open(os.path.join(ird, "modules"), "w") as f:
    for m in order:
        shutil.copy(os.path.join(mdir, m), os.path.join(ird, "lib/modules"))
        f.write(os.path.basename(m) + "\n")
print("initramfs modules:", " ".join(os.path.basename(m) for m in order), file=sys.stderr)
PY
cat >"$ird/init" <<'INIT'
#!/bin/sh
# The test VM's initramfs (scripts/vm-image.sh): load the disk's modules,
# mount the root read-only, hand over to systemd.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
halt() {
  echo "initramfs: $*: powering off" >/dev/console
  sleep 2
  poweroff -f
}
while read -r m; do
  insmod "/lib/modules/$m" || halt "insmod $m failed"
done </modules
root= opts=ro
for a in $(cat /proc/cmdline); do
  case "$a" in root=*) root=${a#root=} ;; rw) opts=rw ;; esac
done
i=0
while [ ! -b "$root" ]; do
  i=$((i + 1))
  [ $i -le 300 ] || halt "no $root after 30 s"
  sleep 0.1
done
mount -t ext4 -o "$opts" "$root" /root || halt "cannot mount $root"
mount --move /dev /root/dev
mount --move /sys /root/sys
mount --move /proc /root/proc
exec switch_root /root /sbin/init
INIT
chmod 755 "$ird/init"
# A newc cpio (the kernel's initramfs format), gzip-compressed.
python3 - "$ird" "$work/initrd.img" <<'PY' || fail "writing the initramfs"
import gzip, os, stat, sys
src, dst = sys.argv[1], sys.argv[2]
out = gzip.open(dst, "wb", compresslevel=6)
ino = 0
def entry(name, mode, data=b"", nlink=1):
    global ino
    ino += 1
    n = name.encode() + b"\0"
    hdr = b"070701" + b"".join(b"%08X" % v for v in
        (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(n), 0))
    out.write(hdr + n + b"\0" * (-(110 + len(n)) % 4) + data + b"\0" * (-len(data) % 4))
for top, dirs, files in os.walk(src):
    dirs.sort()
    rel = os.path.relpath(top, src)
    if rel != ".":
        entry(rel, stat.S_IFDIR | 0o755, nlink=2)
    for f in sorted(files):
        p = os.path.join(top, f)
        name = os.path.normpath(os.path.join(rel, f))
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            entry(name, stat.S_IFLNK | 0o777, os.readlink(p).encode())
        else:
            entry(name, stat.S_IFREG | (st.st_mode & 0o777), open(p, "rb").read())
entry("TRAILER!!!", 0)
out.close()
PY
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

# ---- configuration of the guest
f() { as_root sh -c "mkdir -p \"\$(dirname '$root$1')\" && cat >'$root$1'"; }
f /etc/hostname <<<"shadowgw-vm"
# nofail: under heavy load on the host udev once took over 90 s (systemd's
# default device timeout) to announce vda1, and the VM went to emergency mode
# without sshd; shadowgw itself needs only the root. The first-boot unit wants
# /boot/firmware (RequiresMountsFor=) and fails loudly without it.
f /etc/fstab <<'FSTAB'
/dev/vda2 / ext4 defaults,noatime,errors=remount-ro 0 1
/dev/vda1 /boot/firmware vfat defaults,nofail,x-systemd.device-timeout=10min 0 2
FSTAB
as_root mkdir -p "$root/boot/firmware"
# qemu's user-mode network: DHCP gives 10.0.2.15; the host's loopback is 10.0.2.2.
f /etc/systemd/network/10-vm.network <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
NET
as_root chroot "$root" systemctl enable systemd-networkd.service >>"$log" 2>&1
# A quicker boot: no timers or jobs that reach out or scan the disk.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  man-db.timer systemd-timesyncd.service getty@tty1.service; do
  as_root chroot "$root" systemctl mask "$u" >>"$log" 2>&1 || true
done
# Raspberry Pi OS has a group i2c for /dev/i2c-* (dialout, for serial lines, is
# in every Debian): the package's postinst puts its user in both.
as_root chroot "$root" groupadd --system i2c >>"$log" 2>&1 || fail "groupadd i2c"
# Root logs in with the test key only (ssh); no password anywhere.
ssh-keygen -q -t ed25519 -N '' -C shadowgw-vm-test -f "$work/id_ed25519"
as_root install -d -m 700 "$root/root/.ssh"
as_root install -m 600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
f /etc/ssh/sshd_config.d/test.conf <<'SSHD'
PasswordAuthentication no
UseDNS no
SSHD
as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/debootstrap"

# ---- the disk
step "disk image"
# Sectors: 8 MiB gap, 64 MiB FAT32 "bootfs" (one sector a cluster: FAT32 needs
# 65525 clusters at least, or mtools takes it for FAT16), 2 GiB ext4 "rootfs".
fat_start=16384 fat_size=131072 root_start=147456 root_mib=2048
img=$work/disk.img
truncate -s $((root_start / 2048 + root_mib))M "$img"
printf 'label: dos\nstart=%d, size=%d, type=c\nstart=%d, type=83\n' $fat_start $fat_size $root_start | sfdisk -q "$img"
mkfs.fat -F 32 -s 1 -n BOOTFS --offset $fat_start "$img" $((fat_size / 2)) >/dev/null
as_root mke2fs -q -t ext4 -L rootfs -E offset=$((root_start * 512)) -d "$root" "$img" ${root_mib}M
as_root chown "$(id -u):$(id -g)" "$img"
e2fsck -fn "$img?offset=$((root_start * 512))" >>"$log" 2>&1 || fail "e2fsck of the new root file system"

as_root rm -rf "$root"
mkdir -p "$out.tmp"
mv "$work/disk.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
step "done"
echo "$out"
