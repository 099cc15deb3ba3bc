#!/usr/bin/env bash
# One-command set-up: installs every Debian package the project uses (now and for the
# backends that build on it), then configures and builds the project.
#
#   scripts/setup.sh            install packages + build (build/)
#   scripts/setup.sh --deps     install packages only
#
# Runs as root or through sudo. Idempotent: a second run only rebuilds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${INGEST_BUILD_DIR:-$here/build}
deps_only=0
[[ ${1:-} == --deps ]] && deps_only=1

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev
  libnats-dev nats-server
  libsqlite3-dev sqlite3
  libpq-dev postgresql-15
  libfmt-dev doctest-dev libbenchmark-dev
  libssl-dev openssl libcli11-dev
  doxygen
  curl python3 gdb
  clang libclang-rt-14-dev
  chromium fonts-dejavu-core
)

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm run the SQS emulator and the web tests. Any Node >= 20 already on the machine will do.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The SQS emulator used by the SQS backend's tests (pinned: the last release that runs on Node 20).
if [[ -f $here/tests/sqs/package.json ]]; then
  (cd "$here/tests/sqs" && npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent)
fi

# playwright-core drives Debian's Chromium in the page tests (it downloads no browser).
if [[ -f $here/tests/web/package.json ]]; then
  (cd "$here/tests/web" && npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent)
fi

((deps_only)) && exit 0

cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
cmake --build "$build_dir" --parallel "$(nproc)"
