#!/usr/bin/env bash
# make demo: brings up a local fabric of three nodes on loopback that keep persistent Fabric
# Data Sessions to each other (mutual TLS 1.3 with Ed25519 certificates from a demo cluster CA),
# pushes real traffic through them, and prints where to watch session and stream counters.
# make demo-stop: stops it.
# Usage: scripts/demo.sh BUILD_DIR | --stop
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/.demo
base=${DEMO_PORT_BASE:-7440}

stop() {
  if [ -d "$root/pids" ]; then
    for f in "$root"/pids/*; do
      [ -e "$f" ] || continue
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
  fi
}

if [ "${1:-}" = "--stop" ]; then
  stop
  echo "demo: stopped"
  exit 0
fi

build=${1:-build/release}
bin=$PWD/$build/tools/rap-fabric/rap-fabric
cmake --build "$build" --target rap-fabric >/dev/null
stop
rm -rf "$root"
mkdir -p "$root/pids" "$root/logs"

echo "demo: creating the demo cluster CA and node identities in $root"
"$bin" pki init --dir "$root/ca" --cluster demo >/dev/null
for n in edge relay exit client; do
  "$bin" pki issue --dir "$root/ca" --node "$n" --out "$root/nodes/$n" >/dev/null
done

start() {  # name, args...
  local name=$1
  shift
  "$bin" serve --creds "$root/nodes/$name" "$@" >"$root/logs/$name.log" 2>&1 &
  echo $! >"$root/pids/$name"
}
start edge  --listen 127.0.0.1:$((base + 1)) --wss 127.0.0.1:$((base + 11)) --metrics 127.0.0.1:$((base + 61))
start relay --listen 127.0.0.1:$((base + 2)) --metrics 127.0.0.1:$((base + 62)) --connect 127.0.0.1:$((base + 1))
start exit  --listen 127.0.0.1:$((base + 3)) --metrics 127.0.0.1:$((base + 63)) \
  --connect 127.0.0.1:$((base + 1)) --connect 127.0.0.1:$((base + 2))

# Wait until the mesh sessions are up.
for _ in $(seq 1 50); do
  up=$(curl -s "http://127.0.0.1:$((base + 61))/status" | grep -c '"state": "open"' || true)
  [ "$up" -ge 2 ] && break
  sleep 0.2
done
if [ "${up:-0}" -lt 2 ]; then
  echo "demo: nodes did not connect; logs in $root/logs" >&2
  tail -5 "$root"/logs/*.log >&2
  exit 1
fi

echo "demo: 3 nodes up: edge (tls :$((base + 1)), wss :$((base + 11))), relay (:$((base + 2))), exit (:$((base + 3)))"
echo "demo: traffic from a client node through real fabric sessions:"
"$bin" ping --creds "$root/nodes/client" --peer 127.0.0.1:$((base + 1)) --count 500
"$bin" ping --creds "$root/nodes/client" --peer 127.0.0.1:$((base + 11)) --carrier wss --count 200
"$bin" push --creds "$root/nodes/client" --peer 127.0.0.1:$((base + 1)) --bytes 500000000
"$bin" ping --creds "$root/nodes/client" --peer 127.0.0.1:$((base + 1)) --count 500 --bulk

cat <<EOT

The demo fabric is running (logs: $root/logs, stop with: make demo-stop).
  Session/stream counters (Prometheus):  curl -s http://127.0.0.1:$((base + 61))/metrics | grep rap_fabric
  Sessions of a node (JSON):             curl -s http://127.0.0.1:$((base + 61))/status
  Also relay :$((base + 62)) and exit :$((base + 63)).
  Try it yourself:
    $bin ping --creds $root/nodes/client --peer 127.0.0.1:$((base + 1)) --count 1000
    $bin push --creds $root/nodes/client --peer 127.0.0.1:$((base + 3)) --bytes 1000000000 --streams 4
  A node from another cluster is refused:
    $bin pki init --dir /tmp/other-ca --cluster other && $bin pki issue --dir /tmp/other-ca --node x --out /tmp/other-x
    $bin ping --creds /tmp/other-x --peer 127.0.0.1:$((base + 1))
Not in the demo yet (open issues): control plane, PostgreSQL/Redis state, enrollment, console.
EOT
