#!/usr/bin/env bash
# pi-image.sh writes a Raspberry Pi OS image that installs and starts shadowgw on
# its first boot. It needs no root and no loop mounts: the boot partition (FAT)
# is written with mtools and the root partition (ext4) with debugfs, at the
# partitions' offsets inside the image file.
#
# Usage: scripts/pi-image.sh [options] IMAGE(.img|.img.xz) SHADOWGW.deb CONFIG OUTPUT.img
#
#   --ssh                  enable the SSH server (the boot partition's 'ssh' file)
#   --user NAME            create the login user NAME (userconf.txt); the password
#                          is the first line of --password-file, or asked for
#   --password-file FILE   the password of --user
#   --uplink-password FILE installed as /etc/shadowgw/uplink.password (mode 640,
#                          group shadowgw), then deleted from the boot partition
#
# On the first boot the unit shadowgw-firstboot.service, written into the root
# partition and enabled by a symlink, installs the .deb from the boot partition
# with the configuration in place (so the service starts with it), then disables
# itself. Everything it does goes to shadowgw-firstboot.log on the boot
# partition, which any PC can read. Use an official image as it was downloaded:
# after its own first boot, Raspberry Pi OS grows the root partition and more.
#
# Requires: fdisk (sfdisk), mtools, e2fsprogs (debugfs, e2fsck), xz-utils,
# dpkg (dpkg-deb) and, for --user, openssl.
set -euo pipefail

usage() {
  sed -n '/^# Usage:/,/^# On the first boot/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "pi-image: $*" >&2
  exit 1
}

ssh=0 user='' password_file='' uplink_password=''
while [ $# -gt 0 ]; do
  case "$1" in
  --ssh) ssh=1 ;;
  --user) user=${2:?--user needs a name}; shift ;;
  --password-file) password_file=${2:?--password-file needs a file}; shift ;;
  --uplink-password) uplink_password=${2:?--uplink-password needs a file}; shift ;;
  -h | --help) usage ;;
  --) shift; break ;;
  -*) echo "pi-image: unknown option $1" >&2; usage ;;
  *) break ;;
  esac
  shift
done
[ $# -eq 4 ] || usage
in_image=$1 deb=$2 conf=$3 out=$4

for tool in sfdisk mcopy mdir mmd mtype debugfs e2fsck dpkg-deb xz; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install fdisk mtools e2fsprogs dpkg xz-utils)"
done
[ -f "$in_image" ] || die "$in_image: no such file"
[ -f "$conf" ] || die "$conf: no such file"
[ -z "$uplink_password" ] || [ -f "$uplink_password" ] || die "$uplink_password: no such file"
[ -z "$password_file" ] || [ -n "$user" ] || die "--password-file needs --user"
if [ -n "$user" ]; then
  [[ $user =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user $user: not a valid user name"
  command -v openssl >/dev/null || die "openssl is missing (needed to hash the password of --user)"
fi
deb_arch=$(dpkg-deb --field "$deb" Architecture) || die "$deb: not a .deb"
[ "$(dpkg-deb --field "$deb" Package)" = shadowgw ] || die "$deb: not the shadowgw package"
# A configuration the Pi would reject costs a reflash: check it here if this
# machine has shadowgw (SHADOWGW=path/to/shadowgw to choose one).
if command -v "${SHADOWGW:-shadowgw}" >/dev/null; then
  "${SHADOWGW:-shadowgw}" check --config "$conf" >/dev/null ||
    die "$conf: 'shadowgw check' failed (above; checked with $("${SHADOWGW:-shadowgw}" version))"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pi-image.XXXXXX")
done=0
cleanup() {
  rm -rf "$work"
  [ $done = 1 ] || rm -f "$out"
}
trap cleanup EXIT

# ---- the image
echo "pi-image: copying $in_image to $out"
# Sparse: most of an image is empty space. The output exists first so that it
# gets the usual mode, not /dev/stdin's.
: >"$out"
if [[ $in_image == *.xz ]]; then
  # shellcheck disable=SC2216 # cp reads the pipe as /dev/stdin
  xz --decompress --stdout "$in_image" | cp --sparse=always /dev/stdin "$out"
else
  cp --sparse=always "$in_image" "$out"
fi

# Partition 1 is the FAT boot partition, partition 2 the ext4 root (pi-gen's
# layout); sfdisk --dump prints "start=" and "type=" in sectors.
sfdisk --dump "$out" >"$work/partitions" 2>/dev/null || die "$in_image: no partition table: not a Raspberry Pi OS image"
sector=$(sed -n 's/^sector-size: *//p' "$work/partitions")
sector=${sector:-512}
part() { # part N FIELD
  sed -n "s/^[^:]*$1 : .*$2= *\([^,]*\).*/\1/p" "$work/partitions"
}
fat_type=$(part 1 type) root_type=$(part 2 type)
case "$fat_type" in b | c | e) ;; *) die "$in_image: partition 1 is not FAT (type ${fat_type:-none}): not a Raspberry Pi OS image" ;; esac
[ "$root_type" = 83 ] || die "$in_image: partition 2 is not Linux (type ${root_type:-none}): not a Raspberry Pi OS image"
fat=$out@@$(($(part 1 start) * sector))
root="$out?offset=$(($(part 2 start) * sector))"
export MTOOLS_SKIP_CHECK=1 # pi-gen's FAT geometry is not what mtools expects of a floppy

mtype -i "$fat" ::/cmdline.txt >/dev/null 2>&1 || die "$in_image: no cmdline.txt on the boot partition"
debugfs -R 'stat /etc/os-release' "$root" 2>/dev/null | grep -q '^Inode:' ||
  die "$in_image: partition 2 is not a Linux root file system"

# ---- architectures: the image's, from the ELF header of its /usr/bin/dpkg
# (byte 4: class, 18–19: machine, 36–39: ARM flags, little-endian).
# head closes the pipe after 64 bytes: debugfs's SIGPIPE is not a failure
# (pipefail would end the script on a real dpkg, larger than the pipe's buffer).
{ debugfs -R 'cat /usr/bin/dpkg' "$root" 2>/dev/null || true; } | head -c 64 >"$work/elf"
[ "$(head -c 4 "$work/elf" | od -An -c | tr -d ' ')" = 177ELF ] || die "$in_image: no ELF /usr/bin/dpkg in the root partition"
byte() { od -An -tu1 -j "$1" -N 1 "$work/elf" | tr -d ' '; }
class=$(byte 4) machine=$(($(byte 18) + 256 * $(byte 19)))
case "$class:$machine" in
1:40) if (($(byte 37) & 4)); then image_arch=armhf; else image_arch=armel; fi ;; # EF_ARM_ABI_FLOAT_HARD
2:183) image_arch=arm64 ;;
2:62) image_arch=amd64 ;;
1:3) image_arch=i386 ;;
*) image_arch="unknown (ELF class $class, machine $machine)" ;;
esac
[ "$image_arch" = "$deb_arch" ] ||
  die "the image is $image_arch but $(basename "$deb") is $deb_arch: use the shadowgw_*_$image_arch.deb"
echo "pi-image: image and package are $deb_arch"

# ---- where the boot partition is mounted (/boot/firmware since bookworm)
bootdir=/boot/firmware
fstab=$(debugfs -R 'cat /etc/fstab' "$root" 2>/dev/null || true)
if ! grep -qE '^[^#]*[[:space:]]/boot/firmware[[:space:]]' <<<"$fstab" &&
  grep -qE '^[^#]*[[:space:]]/boot[[:space:]]' <<<"$fstab"; then
  bootdir=/boot
fi

# ---- the boot partition: package, configuration, ssh, userconf.txt
echo "pi-image: boot partition (mounted at $bootdir on the Pi)"
mdir -i "$fat" ::/shadowgw >/dev/null 2>&1 || mmd -i "$fat" ::/shadowgw
mcopy -o -i "$fat" "$deb" ::/shadowgw/shadowgw.deb
mcopy -o -i "$fat" "$conf" ::/shadowgw/shadowgw.conf
[ -z "$uplink_password" ] || mcopy -o -i "$fat" "$uplink_password" ::/shadowgw/uplink.password
if [ $ssh = 1 ]; then
  : >"$work/ssh"
  mcopy -o -i "$fat" "$work/ssh" ::/ssh
fi
if [ -n "$user" ]; then
  if [ -n "$password_file" ]; then
    password=$(head -n 1 "$password_file")
  else
    read -r -s -p "password for $user: " password </dev/tty
    echo >&2
  fi
  [ -n "$password" ] || die "empty password for $user"
  printf '%s:%s\n' "$user" "$(printf '%s' "$password" | openssl passwd -6 -stdin)" >"$work/userconf.txt"
  mcopy -o -i "$fat" "$work/userconf.txt" ::/userconf.txt
fi

# ---- the root partition: the first-boot unit and its script
cat >"$work/unit" <<EOF
# Written by shadowgw's pi-image.sh: installs shadowgw from the boot partition
# on the first boot, then disables itself. Log: $bootdir/shadowgw-firstboot.log
[Unit]
Description=Install shadowgw from the boot partition
ConditionPathExists=$bootdir/shadowgw/shadowgw.deb
RequiresMountsFor=$bootdir
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/shadowgw-firstboot
TimeoutStartSec=10min

[Install]
WantedBy=multi-user.target
EOF
cat >"$work/script" <<EOF
#!/bin/sh
# Written by shadowgw's pi-image.sh; run once by shadowgw-firstboot.service.
boot=$bootdir
EOF
cat >>"$work/script" <<'EOF'
src=$boot/shadowgw
exec >>"$boot/shadowgw-firstboot.log" 2>&1
echo "== $(date '+%Y-%m-%d %H:%M:%S %z') shadowgw first boot on $(hostname)"

finish() {
  systemctl disable shadowgw-firstboot.service
  echo "== $1"
  sync
  exit 0
}
step() {
  echo "-- $*"
  "$@" || finish "FAILED: $* (exit $?)"
}

# The configuration first: dpkg keeps it (--force-confold), so the service
# starts with it.
step mkdir -p /etc/shadowgw
step cp "$src/shadowgw.conf" /etc/shadowgw/shadowgw.conf
step env DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold --force-confdef "$src/shadowgw.deb"
if [ -f "$src/uplink.password" ]; then
  # The group shadowgw exists only now; the service started without the file.
  step install -m 640 -o root -g shadowgw "$src/uplink.password" /etc/shadowgw/uplink.password
  step rm -f "$src/uplink.password"
  echo "installed /etc/shadowgw/uplink.password and deleted it from the boot partition"
  step systemctl restart shadowgw.service
fi
step shadowgw check --config /etc/shadowgw/shadowgw.conf
systemctl --no-pager status shadowgw.service
systemctl is-active --quiet shadowgw.service || finish "FAILED: shadowgw.service is not running (journalctl -u shadowgw)"
finish "OK: shadowgw $(dpkg-query -W -f '${Version}' shadowgw) installed and running"
EOF

# debugfs exits 0 even when a request fails, and with e2fsprogs 1.47.0 mkdir of
# an existing directory corrupts the file system: create only what is missing,
# then read everything back.
missing() { ! debugfs -R "stat $1" "$root" 2>/dev/null | grep -q '^Inode:'; }
unit=/etc/systemd/system/shadowgw-firstboot.service
wants=/etc/systemd/system/multi-user.target.wants
script=/usr/local/sbin/shadowgw-firstboot
{
  for dir in /usr/local /usr/local/sbin /etc/systemd /etc/systemd/system "$wants"; do
    if missing "$dir"; then
      echo "mkdir $dir"
      echo "set_inode_field $dir mode 040755"
      echo "set_inode_field $dir uid 0"
      echo "set_inode_field $dir gid 0"
    fi
  done
  for f in "$unit" "$script" "$wants/shadowgw-firstboot.service"; do
    missing "$f" || echo "rm $f"
  done
  echo "write $work/unit $unit"
  echo "set_inode_field $unit mode 0100644"
  echo "write $work/script $script"
  echo "set_inode_field $script mode 0100755"
  echo "symlink $wants/shadowgw-firstboot.service $unit"
  for f in "$unit" "$script" "$wants/shadowgw-firstboot.service"; do
    echo "set_inode_field $f uid 0"
    echo "set_inode_field $f gid 0"
  done
} >"$work/debugfs.cmds"
echo "pi-image: root partition"
debugfs -w -f "$work/debugfs.cmds" "$root" >"$work/debugfs.log" 2>&1
debugfs -R "cat $unit" "$root" 2>/dev/null | cmp -s - "$work/unit" || { cat "$work/debugfs.log"; die "writing $unit failed"; }
debugfs -R "cat $script" "$root" 2>/dev/null | cmp -s - "$work/script" || { cat "$work/debugfs.log"; die "writing $script failed"; }
debugfs -R "stat $wants/shadowgw-firstboot.service" "$root" 2>/dev/null | grep -q "Fast link dest: \"$unit\"" ||
  { cat "$work/debugfs.log"; die "enabling $unit failed"; }
e2fsck -fn "$root" >"$work/e2fsck.log" 2>&1 || { cat "$work/e2fsck.log"; die "the root file system is damaged"; }

done=1
echo "pi-image: wrote $out: flash it (Raspberry Pi Imager: 'Use custom'; or dd)."
echo "pi-image: Imager's OS customisation does not apply to a custom image: use --ssh and --user here."
echo "pi-image: after the first boot, $bootdir/shadowgw-firstboot.log on the boot partition tells how it went."
