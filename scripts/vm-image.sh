#!/usr/bin/env bash
# vm-image.sh builds the test VM of scripts/test-vm.sh: a Debian root of the
# given architecture (debootstrap; the second stage under qemu-user through
# binfmt_misc) with systemd as PID 1, Debian's kernel and initrd, openssh for
# the test driver, and systemd-networkd on qemu's user-mode network. The disk
# has the layout of Raspberry Pi OS (MBR; FAT "bootfs" mounted at
# /boot/firmware; ext4 "rootfs"), so scripts/pi-image.sh writes the first-boot
# install into it as into a Pi image. Built without loop mounts (sfdisk,
# mkfs.fat --offset, mke2fs -d), from Debian's packages only.
#
# Usage: scripts/vm-image.sh [ARCH]   (default arm64; prints the directory)
#
# The result is cached in $SHADOWGW_CACHE (default ~/.cache/shadowgw) under a
# name keyed by this script's content, the suite and the architecture:
# vm-SUITE-ARCH-KEY/{disk.img,vmlinuz,initrd.img,id_ed25519}. Building takes
# 5–15 min (the kernel's postinst builds the initrd under emulation).
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
  exit 1
}
case "$arch" in arm64) qemu=aarch64 ;; armhf) qemu=arm ;; *) fail "unknown architecture $arch (arm64, armhf)" ;; esac
kernel_pkg=linux-image-$arch
[ "$arch" = armhf ] && kernel_pkg=linux-image-armmp-lpae

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

echo "vm-image: building the $suite $arch VM in $out (log: $log)" >&2
pkgs=systemd,systemd-sysv,udev,dbus,kmod,adduser,openssh-server,initramfs-tools,$kernel_pkg
as_root debootstrap --foreign --variant=minbase --arch="$arch" --include="$pkgs" "$suite" "$root" >"$log" 2>&1 ||
  { tail -n 20 "$log" >&2; fail "debootstrap"; }
as_root chroot "$root" /debootstrap/debootstrap --second-stage >>"$log" 2>&1 ||
  { tail -n 20 "$log" >&2; fail "debootstrap --second-stage"; }

# ---- configuration of the guest
f() { as_root sh -c "mkdir -p \"\$(dirname '$root$1')\" && cat >'$root$1'"; }
f /etc/hostname <<<"shadowgw-vm"
f /etc/fstab <<'FSTAB'
/dev/vda2 / ext4 defaults,noatime,errors=remount-ro 0 1
/dev/vda1 /boot/firmware vfat defaults 0 2
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
# Root logs in with the test key only (ssh); no password anywhere.
ssh-keygen -q -t ed25519 -N '' -C shadowgw-vm-test -f "$work/id_ed25519"
as_root install -d -m 700 "$root/root/.ssh"
as_root install -m 600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
f /etc/ssh/sshd_config.d/test.conf <<'SSHD'
PasswordAuthentication no
UseDNS no
SSHD
as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/debootstrap"

# ---- kernel and initrd from the root, then the disk
as_root sh -c "cp '$root'/boot/vmlinuz-* '$work/vmlinuz' && cp '$root'/boot/initrd.img-* '$work/initrd.img'"
as_root chown "$(id -u):$(id -g)" "$work/vmlinuz" "$work/initrd.img"
# Sectors: 8 MiB gap, 64 MiB FAT32 "bootfs", 2 GiB ext4 "rootfs".
fat_start=16384 fat_size=131072 root_start=147456 root_mib=2048
img=$work/disk.img
truncate -s $((root_start / 2048 + root_mib))M "$img"
printf 'label: dos\nstart=%d, size=%d, type=c\nstart=%d, type=83\n' $fat_start $fat_size $root_start | sfdisk -q "$img"
mkfs.fat -F 32 -n bootfs --offset $fat_start "$img" $((fat_size / 2)) >/dev/null
as_root mke2fs -q -t ext4 -L rootfs -E offset=$((root_start * 512)) -d "$root" "$img" ${root_mib}M
as_root chown "$(id -u):$(id -g)" "$img"
e2fsck -fn "$img?offset=$((root_start * 512))" >>"$log" 2>&1 || fail "e2fsck of the new root file system"

as_root rm -rf "$root"
mkdir -p "$out.tmp"
mv "$work/disk.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
