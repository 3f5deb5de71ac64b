#!/usr/bin/env bash
# install-test-deps.sh installs, from Debian's packages, the real AMQP 1.0 peers and tools
# the tests use: RabbitMQ 3.10 (the cloud), Qpid Proton C and Python (devices and test
# servers), Azure uAMQP-C through its Python binding (a device stack), MQTT clients
# (mosquitto-clients, Paho for Python) and the Mosquitto broker, the AMQP 1.0
# specification, openssl (throwaway certificates), qemu-user
# (ARM test runs), and the tools the package and image tests use (debootstrap, lintian,
# systemd-analyze, mtools, dosfstools, e2fsprogs, sfdisk, xz, and for the VM test
# qemu-system-arm and ssh); then, with npm ci, the Node.js peers pinned in
# scripts/package.json and package-lock.json (rhea: a device client and a broker) into
# scripts/node_modules. It is idempotent and never starts a system service.
set -euo pipefail

pkgs=(
  rabbitmq-server
  python3-qpid-proton
  libqpid-proton11-dev
  libqpid-proton11-dev-examples
  python3-uamqp
  amqp-specs
  openssl
  qemu-user-static
  procps
  # MQTT clients for the MQTT listener's tests, and Mosquitto to compare it with
  mosquitto-clients
  python3-paho-mqtt
  mosquitto
  # packaging and image tests (scripts/test-deb.sh, scripts/test-pi-image.sh)
  debootstrap
  lintian
  systemd
  mtools
  dosfstools
  e2fsprogs
  fdisk
  xz-utils
  # the VM test (scripts/test-vm.sh): qemu-system-aarch64, ssh into the guest
  qemu-system-arm
  openssh-client
  python3
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm ci installs exactly the locked versions; it runs again only when the lock
# file changed since the last install.
install_node_peers() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  if ! command -v npm >/dev/null; then
    echo "install-test-deps: npm not found: install Node.js (with npm) for the rhea peers" >&2
    exit 1
  fi
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json" 2>/dev/null; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  install_node_peers
  exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Keep the package's maintainer scripts from starting the system RabbitMQ: the tests run
# their own private node.
cleanup_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  cleanup_policy=1
fi
trap '[ $cleanup_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_node_peers
