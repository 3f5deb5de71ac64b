#!/usr/bin/env bash
# test-deb.sh tests the .deb packages: it builds them (packaging/build-deb.sh),
# checks the systemd unit with systemd-analyze verify and each package with
# lintian, then installs, upgrades, removes and purges each package in a Debian
# root filesystem of the package's architecture (debootstrap; ARM ones run under
# qemu-user through binfmt_misc), checking the files, the system user, the
# unit's enablement, that the installed binary runs and starts as the service
# user, and what stays on remove and goes on purge. In the amd64 root it also
# tests 'shadowgw service install|status|uninstall'.
#
# Usage: scripts/test-deb.sh [ARCH...]   (default, as in CI: amd64 armhf)
#        scripts/test-deb.sh arm64       (by hand: the same package tests, arm64)
#
# Needs root (debootstrap, chroot), and sudo otherwise. The root filesystems are
# cached as tarballs in $SHADOWGW_CACHE (default ~/.cache/shadowgw): building one
# takes 1–2 min for amd64 and 4–8 min under emulation, extracting it seconds; with
# the cache, amd64 + armhf take 1–1.5 min and arm64 about 40 s. CI should keep
# that directory between runs.
#
# Environment: DEB_SUITE (default bookworm), SHADOWGW_CACHE, KEEP=1 to keep the
# work directory, MEASURE=1 to print the idle daemon's VmRSS (qemu's included
# for ARM).
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 armhf)
suite=${DEB_SUITE:-bookworm}
cache=${SHADOWGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shadowgw}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

fail() {
  echo "test-deb: FAIL: $*" >&2
  exit 1
}

step() { echo "-- $*"; }

# ---- binfmt_misc: lets the kernel run ARM binaries, and so chroots, with qemu.
setup_binfmt() {
  local qemu=$1
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qemu" ]; then
    [ -f "/usr/lib/binfmt.d/qemu-$qemu.conf" ] || fail "no /usr/lib/binfmt.d/qemu-$qemu.conf: install qemu-user-static"
    as_root sh -c "cat /usr/lib/binfmt.d/qemu-$qemu.conf >/proc/sys/fs/binfmt_misc/register"
  fi
  grep -q enabled "/proc/sys/fs/binfmt_misc/qemu-$qemu" || fail "binfmt handler qemu-$qemu is disabled"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/shadowgw-test-deb.XXXXXX")
mounts=()
cleanup() {
  local m
  for m in "${mounts[@]}"; do as_root umount -l "$m" 2>/dev/null || true; done
  if [ "${KEEP:-}" = 1 ]; then
    echo "test-deb: work directory kept: $work"
  else
    as_root rm -rf "$work"
  fi
}
trap cleanup EXIT

# ---- root filesystems
# rootfs ARCH DIR extracts a minimal Debian for ARCH into DIR, building and
# caching the tarball first if needed.
rootfs() {
  local arch=$1 dir=$2
  local tarball=$cache/rootfs-$suite-$arch.tar.gz
  if [ ! -s "$tarball" ]; then
    step "$arch: building the $suite root filesystem (cached in $tarball)"
    local build=$work/debootstrap-$arch
    local opts=(--variant=minbase --include=adduser --arch="$arch")
    if [ "$arch" = "$(dpkg --print-architecture)" ]; then
      as_root debootstrap "${opts[@]}" "$suite" "$build" >"$work/debootstrap-$arch.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap-$arch.log"; fail "debootstrap $arch"; }
    else
      as_root debootstrap --foreign "${opts[@]}" "$suite" "$build" >"$work/debootstrap-$arch.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap-$arch.log"; fail "debootstrap $arch"; }
      as_root chroot "$build" /debootstrap/debootstrap --second-stage >>"$work/debootstrap-$arch.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap-$arch.log"; fail "debootstrap --second-stage $arch"; }
    fi
    as_root rm -rf "$build"/var/cache/apt/archives/*.deb "$build"/var/lib/apt/lists/*
    mkdir -p "$cache"
    as_root tar -C "$build" -czf "$tarball.tmp" .
    as_root chown "$(id -u):$(id -g)" "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    as_root rm -rf "$build"
  fi
  as_root mkdir -p "$dir"
  as_root tar -C "$dir" -xzf "$tarball"
}

# inroot ROOT CMD... runs CMD in the chroot with a clean environment.
inroot() {
  local root=$1
  shift
  as_root env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 ${QEMU_CPU:+QEMU_CPU=$QEMU_CPU} chroot "$root" "$@"
}

# ---- checks
# exists ROOT PATH WHEN and absent ROOT PATH WHEN look at PATH inside ROOT (where
# absolute symlinks resolve), counting dangling symlinks as present.
exists() { inroot "$1" sh -c '[ -e "$1" ] || [ -L "$1" ]' sh "$2" || fail "$arch: $2 missing ($3)"; }
absent() { ! inroot "$1" sh -c '[ -e "$1" ] || [ -L "$1" ]' sh "$2" || fail "$arch: $2 still there ($3)"; }
# owner PATH "USER:GROUP MODE" [FORMAT] checks a file in the chroot $root
# (names from its /etc/passwd, not the host's).
owner() {
  local got
  got=$(inroot "$root" stat -c "${3:-%U:%G %a}" "$1")
  [ "$got" = "$2" ] || fail "$arch: $1: got $got, want $2"
}
wants=/etc/systemd/system/multi-user.target.wants/shadowgw.service

# run_daemon ROOT starts 'shadowgw run' as the service user in ROOT, waits until
# it listens, checks the store, and stops it with SIGTERM.
run_daemon() {
  local root=$1 log=$work/run-$arch.log pidfile=$work/run-$arch.pid job pid='' i rss
  # sh writes its pid and execs chroot, which execs the daemon: one process.
  as_root sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$pidfile" \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot --userspec=shadowgw:shadowgw "$root" \
    /usr/bin/shadowgw run --config /etc/shadowgw/shadowgw.conf --listen 127.0.0.1:0 --metrics "" \
    >"$log" 2>&1 &
  job=$!
  for ((i = 0; i < 600; i++)); do
    [ -n "$pid" ] || pid=$(cat "$pidfile" 2>/dev/null || true)
    grep -q "listening for devices" "$log" && break
    kill -0 "$job" 2>/dev/null || { cat "$log"; fail "$arch: the daemon exited"; }
    sleep 0.1
  done
  grep -q "listening for devices" "$log" || { cat "$log"; fail "$arch: the daemon did not listen within 60s"; }
  if [ "${MEASURE:-}" = 1 ]; then
    sleep 2 # let it settle
    rss=$(awk '/^VmRSS/ {print $2, $3}' "/proc/$pid/status")
    echo "test-deb: $arch: idle daemon VmRSS $rss$( [ "$arch" = amd64 ] || echo ' (with qemu-user)')"
  fi
  as_root kill -TERM "$pid"
  wait "$job" || { cat "$log"; fail "$arch: the daemon did not exit cleanly on SIGTERM"; }
  owner /var/lib/shadowgw/shadowgw.db shadowgw:shadowgw %U:%G
}

# test_service ROOT BINARY: 'shadowgw service' on a machine without the package,
# with a stand-in systemctl (no systemd runs in a chroot).
test_service() {
  local root=$1 binary=$2 unit=/etc/systemd/system/shadowgw.service
  step "$arch: shadowgw service install/status/uninstall without the package"
  as_root install -m 755 "$binary" "$root/usr/local/bin/shadowgw"
  as_root install -D -m 644 packaging/shadowgw.conf "$root/etc/shadowgw/shadowgw.conf"
  as_root mkdir -p "$root/run/systemd/system"
  as_root sh -c "cat >'$root/usr/local/sbin/systemctl'" <<'EOF'
#!/bin/sh
echo "$*" >>/tmp/systemctl.log
case "$1" in is-active) echo active ;; esac
EOF
  as_root chmod 755 "$root/usr/local/sbin/systemctl"
  inroot "$root" userdel shadowgw 2>/dev/null || true
  inroot "$root" /usr/local/bin/shadowgw service install >"$work/service.log" 2>&1 ||
    { cat "$work/service.log"; fail "$arch: shadowgw service install"; }
  inroot "$root" getent passwd shadowgw | grep -q ':/var/lib/shadowgw:/usr/sbin/nologin$' ||
    fail "$arch: service install did not create the system user"
  as_root grep -qx 'ExecStart=/usr/local/bin/shadowgw "run" "--config" "/etc/shadowgw/shadowgw.conf"' "$root$unit" ||
    fail "$arch: unexpected ExecStart in $unit"
  as_root grep -qx 'enable shadowgw.service' "$root/tmp/systemctl.log" || fail "$arch: service install did not enable the unit"
  sed "s|^ExecStart=/usr/local/bin/shadowgw|ExecStart=$root/usr/local/bin/shadowgw|" "$root$unit" >"$work/installed.service"
  systemd-analyze verify "$work/installed.service" || fail "$arch: systemd-analyze verify of the unit service install wrote"
  [ "$(inroot "$root" /usr/local/bin/shadowgw service status)" = running ] || fail "$arch: service status"
  inroot "$root" /usr/local/bin/shadowgw service uninstall >>"$work/service.log" 2>&1 ||
    { cat "$work/service.log"; fail "$arch: shadowgw service uninstall"; }
  absent "$root" "$unit" "after service uninstall"
  as_root rm -rf "$root/run/systemd" "$root/usr/local/sbin/systemctl"
}

# test_arch ARCH runs the install, upgrade, remove and purge sequence.
test_arch() {
  local arch=$1 root=$work/root-$1 qemu='' v1=$work/v1-$1.deb v2=$work/v2-$1.deb
  case "$arch" in armhf) qemu=arm ;; arm64) qemu=aarch64 ;; esac
  [ -z "$qemu" ] || setup_binfmt "$qemu"
  local t0=$SECONDS
  rootfs "$arch" "$root"
  as_root mount -t proc proc "$root/proc"
  mounts+=("$root/proc")
  as_root cp "$v1" "$v2" "$root/tmp/"
  step "$arch: root filesystem ready in $((SECONDS - t0))s"

  step "$arch: install"
  inroot "$root" dpkg -i "/tmp/$(basename "$v1")" >"$work/dpkg-$arch.log" 2>&1 ||
    { cat "$work/dpkg-$arch.log"; fail "$arch: dpkg -i"; }
  for f in /usr/bin/shadowgw /usr/lib/systemd/system/shadowgw.service /etc/shadowgw/shadowgw.conf \
    /usr/share/man/man1/shadowgw.1.gz /usr/share/doc/shadowgw/copyright; do
    exists "$root" "$f" "after install"
  done
  inroot "$root" dpkg-query -W -f='${Conffiles}\n' shadowgw | grep -q '/etc/shadowgw/shadowgw.conf' ||
    fail "$arch: shadowgw.conf is not a conffile"
  inroot "$root" getent passwd shadowgw | grep -q ':/var/lib/shadowgw:/usr/sbin/nologin$' ||
    fail "$arch: no system user shadowgw with home /var/lib/shadowgw and no login"
  inroot "$root" id -nG shadowgw | grep -qw dialout || fail "$arch: shadowgw is not in the group dialout"
  owner /var/lib/shadowgw "shadowgw:shadowgw 750"
  owner /etc/shadowgw/shadowgw.conf "root:shadowgw 640"
  # deb-systemd-helper links to /lib/systemd/system on bookworm: /lib is /usr/lib.
  [ "$(inroot "$root" readlink -f "$wants")" = /usr/lib/systemd/system/shadowgw.service ] ||
    fail "$arch: the unit is not enabled in multi-user.target"

  step "$arch: the installed binary runs"
  inroot "$root" /usr/bin/shadowgw version | grep -q '^shadowgw ' || fail "$arch: shadowgw version"
  if [ "$arch" = armhf ]; then # the oldest Raspberry Pi CPU, as on a Pi Zero or 1
    QEMU_CPU=arm1176 inroot "$root" /usr/bin/shadowgw version >/dev/null || fail "$arch: shadowgw on ARMv6 (arm1176)"
  fi
  inroot "$root" /usr/bin/shadowgw check --config /etc/shadowgw/shadowgw.conf >/dev/null ||
    fail "$arch: the packaged configuration does not pass shadowgw check"
  run_daemon "$root"

  step "$arch: upgrade keeps configuration, data and enablement"
  as_root sh -c "echo '# changed by the administrator' >>'$root/etc/shadowgw/shadowgw.conf'"
  inroot "$root" dpkg -i --force-confold "/tmp/$(basename "$v2")" >"$work/dpkg-$arch.log" 2>&1 ||
    { cat "$work/dpkg-$arch.log"; fail "$arch: dpkg -i (upgrade)"; }
  [ "$(inroot "$root" dpkg-query -W -f='${Version}' shadowgw)" = 0.0.2~test-1 ] || fail "$arch: not upgraded"
  as_root grep -q 'changed by the administrator' "$root/etc/shadowgw/shadowgw.conf" ||
    fail "$arch: the upgrade lost the administrator's configuration"
  exists "$root" /var/lib/shadowgw/shadowgw.db "after upgrade"
  exists "$root" "$wants" "after upgrade"

  step "$arch: remove keeps configuration and data, purge deletes them"
  inroot "$root" dpkg -r shadowgw >"$work/dpkg-$arch.log" 2>&1 || { cat "$work/dpkg-$arch.log"; fail "$arch: dpkg -r"; }
  absent "$root" /usr/bin/shadowgw "after remove"
  absent "$root" /usr/lib/systemd/system/shadowgw.service "after remove"
  exists "$root" /etc/shadowgw/shadowgw.conf "after remove"
  exists "$root" /var/lib/shadowgw/shadowgw.db "after remove"
  [ "$(as_root readlink "$root/etc/systemd/system/shadowgw.service")" = /dev/null ] ||
    fail "$arch: the removed unit is not masked"
  inroot "$root" dpkg -P shadowgw >"$work/dpkg-$arch.log" 2>&1 || { cat "$work/dpkg-$arch.log"; fail "$arch: dpkg -P"; }
  for f in /etc/shadowgw/shadowgw.conf /var/lib/shadowgw /etc/systemd/system/shadowgw.service "$wants"; do
    absent "$root" "$f" "after purge"
  done
  ! inroot "$root" dpkg-statoverride --list /etc/shadowgw/shadowgw.conf >/dev/null || fail "$arch: statoverride left after purge"
  inroot "$root" getent passwd shadowgw >/dev/null || fail "$arch: purge deleted the system user"

  step "$arch: install again after purge"
  inroot "$root" dpkg -i "/tmp/$(basename "$v2")" >"$work/dpkg-$arch.log" 2>&1 ||
    { cat "$work/dpkg-$arch.log"; fail "$arch: dpkg -i after purge"; }
  exists "$root" "$wants" "after reinstall"
  inroot "$root" dpkg -P shadowgw >"$work/dpkg-$arch.log" 2>&1 || { cat "$work/dpkg-$arch.log"; fail "$arch: dpkg -P"; }

  if [ "$arch" = amd64 ]; then
    test_service "$root" "$work/shadowgw-$arch"
  fi
  as_root umount "$root/proc"
  as_root rm -rf "$root"
  step "$arch: passed in $((SECONDS - t0))s"
}

start=$SECONDS
for arch in "${arches[@]}"; do
  case "$arch" in amd64 | armhf | arm64) ;; *) fail "unknown architecture $arch (amd64, armhf, arm64)" ;; esac
  step "$arch: building the packages"
  # The package as 'make deb' builds it, for lintian; then the same binary as
  # two test versions, the second one being the upgrade.
  deb=$(packaging/build-deb.sh "$arch" "$work/build-$arch" 2>"$work/build.log") ||
    { cat "$work/build.log"; fail "$arch: packaging/build-deb.sh"; }
  mv "$work/build-$arch"/shadowgw-linux-* "$work/shadowgw-$arch"
  for v in 1 2; do
    DEB_VERSION=0.0.$v~test-1 BINARY=$work/shadowgw-$arch packaging/build-deb.sh "$arch" "$work" \
      >/dev/null 2>"$work/build.log" || { cat "$work/build.log"; fail "$arch: packaging/build-deb.sh"; }
    mv "$work/shadowgw_0.0.$v~test-1_$arch.deb" "$work/v$v-$arch.deb"
  done
  step "$arch: lintian $(basename "$deb")"
  lintian --fail-on error,warning --display-info --pedantic "$deb" ||
    fail "$arch: lintian (packaging/lintian-overrides lists the accepted tags and why)"
done

step "systemd-analyze verify systemd/shadowgw.service"
sed "s|^ExecStart=/usr/bin/shadowgw|ExecStart=$work/shadowgw-${arches[0]}|" systemd/shadowgw.service >"$work/shadowgw.service"
systemd-analyze verify "$work/shadowgw.service" || fail "systemd-analyze verify"

for arch in "${arches[@]}"; do
  test_arch "$arch"
done
echo "test-deb: ${arches[*]}: all passed in $((SECONDS - start))s"
