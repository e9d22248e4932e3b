#!/usr/bin/env bash
# Installs every Debian 12 package RAP needs to build, test and demo. Idempotent: silent when
# everything is already present. Each package and why is listed in docs/ARCHITECTURE.md.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang clang-tidy clang-format libclang-rt-14-dev
  # libraries
  libboost1.81-dev libssl-dev libpq-dev libpqxx-dev libhiredis-dev nlohmann-json3-dev
  libspdlog-dev libfmt-dev libcli11-dev libsodium-dev libexpected-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # real peers and services used by tests and the demo
  postgresql redis-server iproute2 nftables iperf3 socat curl stunnel4 openssh-client openssh-server
  procps psmisc python3
  # web console: headless browser for its end-to-end test (driven by playwright-core from npm)
  chromium
)
# The console is built with node + npm (web/). Use the machine's node when it has one (any
# version >= 18); otherwise Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/rap-bootstrap.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/rap-bootstrap.log 2>&1
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/rap-bootstrap.log 2>&1 || {
    tail -30 /tmp/rap-bootstrap.log; echo "bootstrap: apt-get failed (log: /tmp/rap-bootstrap.log)" >&2; exit 1; }
fi
echo "bootstrap: done"
