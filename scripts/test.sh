#!/usr/bin/env bash
# test.sh runs every test of shadowgw on a fresh Debian 12 machine with Go: it installs
# the real AMQP 1.0 peers the tests talk to (RabbitMQ, Qpid Proton C and Python) from
# Debian's packages, then runs vet, the unit, interop and end-to-end tests, each fuzz
# target briefly, and the store and edge tests on emulated Raspberry Pi CPUs (ARMv6
# under qemu-arm-static -cpu arm1176, and arm64).
#
# Environment: FUZZTIME (default 5s per fuzz target), SKIP_ARM=1 to leave out the
# emulated runs, SKIP_VM=1 to leave out the VM (scripts/test-vm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

export SHADOWGW_REQUIRE_PEERS=1 # a missing peer fails the tests instead of skipping them
fuzztime=${FUZZTIME:-5s}

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 20m ./...

echo "== fuzz (${fuzztime} per target)"
# A finding makes go test write the failing input under testdata/fuzz and fail. Go's
# coordinator can also end a timed run with "context deadline exceeded" and no input:
# that is not a finding, so it is reported and the run goes on.
fuzz() {
  local out rc=0
  out=$(go test -run '^$' -fuzz "^$1\$" -fuzztime "$fuzztime" "$2" 2>&1) || rc=$?
  if [ $rc -eq 0 ]; then
    echo "$out" | tail -n 1
  elif grep -q "Failing input written" <<<"$out" || ! grep -q "context deadline exceeded" <<<"$out"; then
    echo "$out"
    return 1
  else
    echo "$1 $2: fuzzing ended on the coordinator's deadline, no failing input (not a finding)"
  fi
}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    fuzz "$target" "$pkg"
  done
done

if [ "${SKIP_ARM:-}" != 1 ]; then
  echo "== store and edge tests on ARMv6 (arm1176, GOARM=6) and arm64 under qemu-user"
  CGO_ENABLED=0 GOARCH=arm GOARM=6 go test -count=1 -short -timeout 15m \
    -exec "qemu-arm-static -cpu arm1176" ./store/ ./edge/...
  CGO_ENABLED=0 GOARCH=arm64 go test -count=1 -short -timeout 15m \
    -exec qemu-aarch64-static ./store/ ./edge/...
fi
echo "== .deb packages: lintian, install, upgrade, remove in Debian roots (scripts/test-deb.sh)"
if [ "${SKIP_ARM:-}" = 1 ]; then scripts/test-deb.sh amd64; else scripts/test-deb.sh amd64 armhf arm64; fi
echo "== Raspberry Pi OS image on synthetic images (scripts/test-pi-image.sh)"
scripts/test-pi-image.sh
if [ "${SKIP_VM:-}" != 1 ]; then
  echo "== the arm64 .deb under systemd in a VM (qemu TCG): systemd checks and 3 power cuts (scripts/test-vm.sh)"
  POWER_CUTS=3 timeout 20m scripts/test-vm.sh
fi
echo "== all tests passed"
