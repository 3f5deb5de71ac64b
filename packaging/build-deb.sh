#!/usr/bin/env bash
# build-deb.sh builds the shadowgw .deb for one Debian architecture with nfpm
# (pinned in go.mod's tool block): the static binary, the systemd unit, the
# configuration as a conffile, the maintainer scripts, a man page, and a
# copyright file with the license of every Go module linked into the binary.
#
# Usage: packaging/build-deb.sh armhf|arm64|amd64 [OUT_DIR]   (default OUT_DIR: bin)
# It prints the path of the .deb it wrote.
#
# Environment:
#   VERSION         the program's version (default: git describe)
#   DEB_VERSION     the package's version (default: derived from VERSION, revision 1)
#   DEB_MAINTAINER  the Maintainer field
#   BINARY          package this binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
out=${2:-bin}
case "$arch" in
armhf) goarch=arm goarm=6 suffix=armv6 ;; # ARMv6 so that Pi Zero and Pi 1 work
arm64) goarch=arm64 goarm='' suffix=arm64 ;;
amd64) goarch=amd64 goarm='' suffix=amd64 ;;
*)
  echo "usage: $0 armhf|arm64|amd64 [OUT_DIR]" >&2
  exit 2
  ;;
esac

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}

# debian_version turns a git describe string into a Debian upstream version that
# sorts the way the commits do: v1.2.3 → 1.2.3, v1.2.3-4-gabc → 1.2.3+git4.abc,
# v1.2.3-rc1 → 1.2.3~rc1, an untagged abc → 0~git<commit time>.abc.
debian_version() {
  local v=${1#v} dirty=
  case "$v" in *-dirty) v=${v%-dirty} dirty=+dirty ;; esac
  if [[ $v =~ ^([0-9][^-]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
    v="${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
  elif [[ $v =~ ^([0-9][^-]*)-(.+)$ ]]; then
    v="${BASH_REMATCH[1]}~${BASH_REMATCH[2]}"
  elif [[ $v =~ ^[0-9a-f]{7,40}$ || ! $v =~ ^[0-9] ]]; then
    v="0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0).$v"
  fi
  v="$v$dirty"
  echo "${v//-/.}"
}
deb_version=${DEB_VERSION:-$(debian_version "$version")-1}
maintainer=${DEB_MAINTAINER:-shadowgw maintainers <maintainers@shadowgw.org>}

mkdir -p "$out"
binary=${BINARY:-}
if [ -z "$binary" ]; then
  binary=$out/shadowgw-linux-$suffix
  CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm go build -trimpath \
    -ldflags "-s -w -X main.version=$version" -o "$binary" ./cmd/shadowgw
fi

doc=$(mktemp -d)
trap 'rm -rf "$doc"' EXIT

gzip -9n <packaging/shadowgw.1 >"$doc/shadowgw.1.gz"

# Dates come from the commit, so that two builds of one commit are the same.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
{
  echo "shadowgw ($deb_version) unstable; urgency=medium"
  echo
  echo "  * Build of shadowgw $version."
  echo
  echo " -- $maintainer  $date"
} | gzip -9n >"$doc/changelog.Debian.gz"

# license_files prints the license and notice files at the top of a module.
license_files() {
  find "$1" -maxdepth 1 -type f \( -iname 'licen[cs]e*' -o -iname 'copying*' -o -iname 'notice*' \) | sort
}
{
  cat <<EOF
shadowgw: AMQP 1.0 store-and-forward gateway
Source: https://github.com/shadowgw/shadowgw

Copyright: the shadowgw authors
License: Apache-2.0

 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy of
 the License at http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations under
 the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 is
 in /usr/share/common-licenses/Apache-2.0 (the LICENSE file of the source).
EOF
  echo
  echo "/usr/bin/shadowgw is statically linked with the Go standard library and"
  echo "the Go modules below. Their copyright and license notices follow."
  echo
  echo "== Go standard library ($(go env GOVERSION))"
  echo
  cat "$(go env GOROOT)/LICENSE"
  go version -m "$binary" | awk '$1 == "dep" || $1 == "=>" { print $2 "@" $3 }' |
    while read -r mod; do
      dir=$(go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
      files=$(license_files "$dir")
      if [ -z "$files" ]; then
        echo "build-deb.sh: no license file in $mod ($dir)" >&2
        exit 1
      fi
      for f in $files; do
        echo
        echo "== $mod: $(basename "$f")"
        echo
        if grep -q 'Apache License' "$f" && grep -q 'Version 2\.0' "$f" && grep -q 'TERMS AND CONDITIONS' "$f"; then
          # Debian ships this text; Policy 12.5 wants a reference.
          echo "Apache License, Version 2.0: /usr/share/common-licenses/Apache-2.0"
        else
          tr -d '\r' <"$f"
        fi
      done
    done
} >"$doc/copyright"

deb=$out/shadowgw_${deb_version}_${arch}.deb
DEB_ARCH=$arch DEB_VERSION=$deb_version DEB_MAINTAINER=$maintainer BINARY=$binary DOC_DIR=$doc \
  go tool nfpm package --config packaging/nfpm.yaml --packager deb --target "$deb" >&2
echo "$deb"
