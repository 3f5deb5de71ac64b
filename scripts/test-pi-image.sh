#!/usr/bin/env bash
# test-pi-image.sh tests scripts/pi-image.sh on synthetic images with the layout
# of Raspberry Pi OS (MBR; FAT32 "bootfs" at 8 MiB; ext4 "rootfs" after it), made
# without root in about a second with truncate, sfdisk, mkfs.fat --offset and
# mke2fs -d. It checks what pi-image.sh wrote with mdir/mtype (FAT) and debugfs
# (ext4), that e2fsck -fn finds the root file system clean, and that a package
# of the wrong architecture or a file that is no Pi image is refused.
#
# Usage: scripts/test-pi-image.sh   (KEEP=1 keeps the work directory)
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/shadowgw-test-pi-image.XXXXXX")
if [ "${KEEP:-}" = 1 ]; then
  trap 'echo "test-pi-image: work directory kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
export MTOOLS_SKIP_CHECK=1
start=$SECONDS

fail() {
  echo "test-pi-image: FAIL: $*" >&2
  exit 1
}
step() { echo "-- $*"; }

# elf_header ARCH prints the first bytes of an ELF executable of ARCH, enough for
# pi-image.sh, which reads the class, the machine and the ARM float ABI.
elf_header() {
  case "$1" in
  armhf) printf '\177ELF\1\1\1\0\0\0\0\0\0\0\0\0\2\0\50\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\4\0\5' ;;
  arm64) printf '\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\2\0\267\0\1\0\0\0' ;;
  esac
  head -c 64 /dev/zero
}

# Partitions in 512-byte sectors.
fat_start=16384 fat_size=81920 root_start=98304

# make_image ARCH BOOTDIR OUT writes an image like pi-gen's (smaller partitions)
# whose /usr/bin/dpkg is an ARCH executable and whose boot partition is mounted
# at BOOTDIR.
make_image() {
  local arch=$1 bootdir=$2 img=$3
  local root=$work/rootdir-$arch
  rm -rf "$root"
  mkdir -p "$root"/etc/systemd/system/multi-user.target.wants "$root"/usr/bin "$root"/usr/local "$root$bootdir"
  printf 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\n' >"$root/etc/os-release"
  printf 'proc /proc proc defaults 0 0\nPARTUUID=6c586e13-01 %s vfat defaults 0 2\nPARTUUID=6c586e13-02 / ext4 defaults,noatime 0 1\n' \
    "$bootdir" >"$root/etc/fstab"
  ln -s /lib/systemd/system/ssh.service "$root/etc/systemd/system/multi-user.target.wants/ssh.service"
  elf_header "$arch" >"$root/usr/bin/dpkg"
  chmod 755 "$root/usr/bin/dpkg"

  # 8 MiB gap, 40 MiB FAT32 (pi-gen: 512 MiB), 16 MiB ext4 (grown on first boot).
  truncate -s 64M "$img"
  printf 'label: dos\nstart=%d, size=%d, type=c\nstart=%d, type=83\n' $fat_start $fat_size $root_start | sfdisk -q "$img"
  mkfs.fat -F 32 -s 1 -n bootfs --offset $fat_start "$img" $((fat_size / 2)) >/dev/null 2>&1
  printf 'console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 fsck.repair=yes rootwait\n' >"$work/cmdline.txt"
  printf '[all]\ndtparam=audio=on\n' >"$work/config.txt"
  mcopy -i "$img@@$((fat_start * 512))" "$work/cmdline.txt" "$work/config.txt" ::/
  mke2fs -q -t ext4 -L rootfs -E offset=$((root_start * 512)) -d "$root" "$img" 16M
}

# make_deb ARCH writes a stand-in shadowgw package of ARCH: pi-image.sh only
# reads its control fields and copies it.
make_deb() {
  local d=$work/deb-$1
  mkdir -p "$d/DEBIAN"
  printf 'Package: shadowgw\nVersion: 0.0.1~test-1\nArchitecture: %s\nMaintainer: test <test@example.org>\nDescription: stand-in\n' \
    "$1" >"$d/DEBIAN/control"
  dpkg-deb --root-owner-group --build "$d" "$work/shadowgw_$1.deb" >/dev/null
}

# Checks read the result back without mounting: F runs an mtools command on the
# boot partition, R a debugfs request on the root partition.
F() {
  local cmd=$1
  shift
  "$cmd" -i "$out@@$((fat_start * 512))" "$@"
}
R() { debugfs -R "$1" "$out?offset=$((root_start * 512))" 2>/dev/null; }

make_deb armhf
make_deb arm64
conf=packaging/shadowgw.conf
printf 'uplink-secret\n' >"$work/uplink.password"
printf 's3cret pass\n' >"$work/login.password"

step "armhf image (.img.xz) with ssh, a user and an uplink password"
make_image armhf /boot/firmware "$work/pi-armhf.img"
xz -0 -T1 "$work/pi-armhf.img"
out=$work/out-armhf.img
scripts/pi-image.sh --ssh --user pi --password-file "$work/login.password" --uplink-password "$work/uplink.password" \
  "$work/pi-armhf.img.xz" "$work/shadowgw_armhf.deb" "$conf" "$out" >"$work/pi-image.log" 2>&1 ||
  { cat "$work/pi-image.log"; fail "pi-image.sh on an armhf image"; }

F mdir -b ::/shadowgw >"$work/mdir" || fail "no shadowgw directory on the boot partition"
for f in shadowgw.deb shadowgw.conf uplink.password; do
  grep -q "/shadowgw/$f\$" "$work/mdir" || fail "boot partition: shadowgw/$f missing"
done
F mtype ::/shadowgw/shadowgw.conf | cmp -s - "$conf" || fail "boot partition: shadowgw.conf differs"
F mcopy ::/shadowgw/shadowgw.deb "$work/copied.deb"
cmp -s "$work/copied.deb" "$work/shadowgw_armhf.deb" || fail "boot partition: shadowgw.deb differs"
F mdir ::/ssh >/dev/null 2>&1 || fail "boot partition: ssh missing"
userconf=$(F mtype ::/userconf.txt)
salt=$(cut -d'$' -f3 <<<"$userconf")
[ "$userconf" = "pi:$(openssl passwd -6 -salt "$salt" 's3cret pass')" ] || fail "userconf.txt: got $userconf"
F mtype ::/cmdline.txt | cmp -s - "$work/cmdline.txt" || fail "cmdline.txt changed"

unit=/etc/systemd/system/shadowgw-firstboot.service
R "cat $unit" >"$work/unit"
grep -qx 'ExecStart=/usr/local/sbin/shadowgw-firstboot' "$work/unit" || fail "first-boot unit: no ExecStart"
grep -qx 'ConditionPathExists=/boot/firmware/shadowgw/shadowgw.deb' "$work/unit" || fail "first-boot unit: wrong boot directory"
grep -qx 'WantedBy=multi-user.target' "$work/unit" || fail "first-boot unit: no [Install]"
sed 's|^ExecStart=.*|ExecStart=/bin/true|' "$work/unit" >"$work/firstboot.service"
systemd-analyze verify "$work/firstboot.service" 2>&1 | grep -v 'Unit.*not found\|local-fs.target\|boot-firmware.mount' || true
R "stat /etc/systemd/system/multi-user.target.wants/shadowgw-firstboot.service" |
  grep -q "Fast link dest: \"$unit\"" || fail "first-boot unit not enabled"
R "stat /etc/systemd/system/multi-user.target.wants/ssh.service" | grep -q 'Fast link dest' ||
  fail "the image's own enabled units were lost"
R "stat /usr/local/sbin/shadowgw-firstboot" >"$work/stat"
grep -q 'Mode:  0755' "$work/stat" && grep -q 'User:     0   Group:     0' "$work/stat" ||
  fail "first-boot script: not root-owned 0755: $(head -n 3 "$work/stat")"
R "cat /usr/local/sbin/shadowgw-firstboot" >"$work/script"
sh -n "$work/script" || fail "first-boot script: syntax"
grep -q '^boot=/boot/firmware$' "$work/script" || fail "first-boot script: wrong boot directory"
grep -q 'shadowgw-firstboot.log' "$work/script" || fail "first-boot script: no log on the boot partition"
e2fsck -fn "$out?offset=$((root_start * 512))" >"$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log"; fail "e2fsck -fn"; }
dd if="$out" of="$work/fat.img" bs=512 skip=$fat_start count=$fat_size conv=sparse status=none # fsck.fat has no --offset
fsck.fat -n "$work/fat.img" >"$work/fsck.fat.log" 2>&1 || { cat "$work/fsck.fat.log"; fail "fsck.fat -n"; }

step "running pi-image.sh twice on one image replaces what it wrote"
cp --sparse=always "$out" "$work/again.img"
scripts/pi-image.sh "$work/again.img" "$work/shadowgw_armhf.deb" "$conf" "$work/again-out.img" >"$work/pi-image.log" 2>&1 ||
  { cat "$work/pi-image.log"; fail "pi-image.sh on its own output"; }
e2fsck -fn "$work/again-out.img?offset=$((root_start * 512))" >"$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log"; fail "e2fsck -fn (second run)"; }

step "arm64 image with the armhf package is refused"
make_image arm64 /boot/firmware "$work/pi-arm64.img"
out=$work/out-arm64.img
if scripts/pi-image.sh "$work/pi-arm64.img" "$work/shadowgw_armhf.deb" "$conf" "$out" >"$work/pi-image.log" 2>&1; then
  fail "pi-image.sh accepted an armhf package for an arm64 image"
fi
grep -q 'the image is arm64 but shadowgw_armhf.deb is armhf' "$work/pi-image.log" || { cat "$work/pi-image.log"; fail "no clear message"; }
[ ! -e "$out" ] || fail "a refused image was left behind"
scripts/pi-image.sh "$work/pi-arm64.img" "$work/shadowgw_arm64.deb" "$conf" "$out" >"$work/pi-image.log" 2>&1 ||
  { cat "$work/pi-image.log"; fail "pi-image.sh on an arm64 image"; }

step "image of a release with the boot partition on /boot (bullseye)"
make_image armhf /boot "$work/pi-old.img"
out=$work/out-old.img
scripts/pi-image.sh "$work/pi-old.img" "$work/shadowgw_armhf.deb" "$conf" "$out" >"$work/pi-image.log" 2>&1 ||
  { cat "$work/pi-image.log"; fail "pi-image.sh on a /boot image"; }
R "cat /usr/local/sbin/shadowgw-firstboot" | grep -q '^boot=/boot$' || fail "first-boot script: not /boot"

step "a file that is no Pi image is refused"
head -c 1M /dev/zero >"$work/zero.img"
if scripts/pi-image.sh "$work/zero.img" "$work/shadowgw_armhf.deb" "$conf" "$work/zero-out.img" >"$work/pi-image.log" 2>&1; then
  fail "pi-image.sh accepted a file of zeros"
fi
grep -q 'not a Raspberry Pi OS image' "$work/pi-image.log" || { cat "$work/pi-image.log"; fail "no clear message"; }

# The first-boot script, run for real: in a Debian root filesystem (the amd64
# one scripts/test-deb.sh caches) with a real package, the boot partition as a
# directory, and a stand-in systemctl. Skipped without root or that cache.
cache=${SHADOWGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shadowgw}
rootfs=$cache/rootfs-${DEB_SUITE:-bookworm}-amd64.tar.gz
if [ "$(id -u)" -ne 0 ] || [ ! -s "$rootfs" ] || [ "$(dpkg --print-architecture)" != amd64 ]; then
  step "SKIP first boot in a Debian root: needs root and $rootfs (scripts/test-deb.sh amd64 makes it)"
else
  step "first boot in a Debian root (amd64) installs, configures and disables itself"
  deb=$(packaging/build-deb.sh amd64 "$work/build" 2>"$work/build.log") || { cat "$work/build.log"; fail "build-deb.sh"; }
  root=$work/firstboot-root
  mkdir -p "$root"
  tar -C "$root" -xzf "$rootfs"
  mount -t proc proc "$root/proc"
  trap 'umount -l "$root/proc"; [ "${KEEP:-}" = 1 ] || rm -rf "$work"' EXIT
  mkdir -p "$root/boot/firmware/shadowgw" "$root/usr/local/sbin"
  cp "$deb" "$root/boot/firmware/shadowgw/shadowgw.deb"
  { cat "$conf"; echo "# chosen for this gateway"; } >"$root/boot/firmware/shadowgw/shadowgw.conf"
  cp "$work/uplink.password" "$root/boot/firmware/shadowgw/uplink.password"
  install -m 755 "$work/script" "$root/usr/local/sbin/shadowgw-firstboot"
  printf '#!/bin/sh\necho "$*" >>/tmp/systemctl.log\n' >"$root/usr/local/sbin/systemctl"
  chmod 755 "$root/usr/local/sbin/systemctl"
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" /usr/local/sbin/shadowgw-firstboot ||
    fail "the first-boot script failed"
  log=$root/boot/firmware/shadowgw-firstboot.log
  tail -n 1 "$log" | grep -q '^== OK: shadowgw .* installed and running$' || { cat "$log"; fail "first boot: no OK in the log"; }
  grep -q 'chosen for this gateway' "$root/etc/shadowgw/shadowgw.conf" || fail "first boot: the configuration is not the one given"
  [ "$(chroot "$root" stat -c '%U:%G %a' /etc/shadowgw/shadowgw.conf /etc/shadowgw/uplink.password | sort -u)" = "root:shadowgw 640" ] ||
    fail "first boot: configuration or uplink password not root:shadowgw 640"
  [ ! -e "$root/boot/firmware/shadowgw/uplink.password" ] || fail "first boot: the uplink password is still on the boot partition"
  grep -qx 'disable shadowgw-firstboot.service' "$root/tmp/systemctl.log" || fail "first boot: the unit did not disable itself"
  grep -qx 'restart shadowgw.service' "$root/tmp/systemctl.log" || fail "first boot: no restart for the uplink password"
fi

echo "test-pi-image: all passed in $((SECONDS - start))s"
