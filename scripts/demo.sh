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
      # The fabric nodes drain on SIGINT; rap-control also stops its embedded PostgreSQL and Redis.
      kill -INT "$(cat "$f")" 2>/dev/null || true
    done
    # Wait (bounded) for rap-control to finish stopping its children.
    for _ in $(seq 1 100); do
      alive=0
      for f in "$root"/pids/*; do
        [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
      done
      [ "$alive" -eq 0 ] && break
      sleep 0.1
    done
    rm -f "$root"/pids/*
  fi
  # Fallback if rap-control was killed hard: its postmaster (fast shutdown).
  if [ -f "$root/control/postgres/data/postmaster.pid" ]; then
    kill -INT "$(head -1 "$root/control/postgres/data/postmaster.pid")" 2>/dev/null || true
    sleep 1
  fi
}

if [ "${1:-}" = "--stop" ]; then
  stop
  echo "demo: stopped"
  exit 0
fi

build=${1:-build/release}
bin=$PWD/$build/tools/rap-fabric/rap-fabric
control=$PWD/$build/tools/rap-control/rap-control
rapctl=$PWD/$build/tools/rapctl/rapctl
agent=$PWD/$build/tools/rap-node-agent/rap-node-agent
cmake --build "$build" --target rap-fabric rap-control rapctl rap-node-agent >/dev/null
stop
rm -rf "$root"
mkdir -p "$root/pids" "$root/logs"

# --- control plane: rap-control in embedded mode (no --database-url): it runs its own
# PostgreSQL and Redis under --data-dir as supervised child processes ---
if [ "$(id -u)" -eq 0 ]; then
  chmod o+x "$root"  # the embedded PostgreSQL runs as `postgres` and must reach $root/control
fi
cport=$((base + 80))
echo "demo: starting rap-control (embedded PostgreSQL + Redis in $root/control)"
web_args=()
[ -f "$PWD/web/dist/index.html" ] && web_args=(--web-dir "$PWD/web/dist")  # make web builds it
"$control" --listen 127.0.0.1:$cport --data-dir "$root/control" "${web_args[@]}" >"$root/logs/control.log" 2>&1 &
echo $! >"$root/pids/control"
token=""
for _ in $(seq 1 300); do
  token=$(grep -o 'RAP SETUP TOKEN: [0-9a-f]*' "$root/logs/control.log" | awk '{print $4}' || true)
  [ -n "$token" ] && curl -sk "https://127.0.0.1:$cport/healthz" >/dev/null && break
  kill -0 "$(cat "$root/pids/control")" 2>/dev/null || break  # exited: report below
  sleep 0.2
done
if [ -z "$token" ]; then
  echo "demo: rap-control did not start; see $root/logs/control.log" >&2
  tail -5 "$root/logs/control.log" >&2
  exit 1
fi
api="https://127.0.0.1:$cport/api/v1"
curl -sk -X POST "$api/setup" -H 'content-type: application/json' \
  -d "{\"setup_token\":\"$token\",\"email\":\"owner@demo.local\",\"password\":\"demo-owner-password\"}" >/dev/null
bearer=$(curl -sk -X POST "$api/login" -H 'content-type: application/json' \
  -d '{"email":"owner@demo.local","password":"demo-owner-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -sk -X POST "$api/orgs" -H "authorization: Bearer $bearer" -H 'content-type: application/json' \
  -d '{"slug":"acme","name":"Acme Corp"}' >/dev/null
echo "demo: rap-control up on https://127.0.0.1:$cport (embedded PostgreSQL + Redis in $root/control; platform owner and org 'acme' created)"

# --- node agents: three hosts enroll through the real join-token + approval flow ---
export RAPCTL_CONFIG=$root/rapctl.json
ca_file=$root/control/tls/server.crt
echo demo-owner-password | "$rapctl" --ca-file "$ca_file" login --server "https://127.0.0.1:$cport" \
  --email owner@demo.local --password-stdin >/dev/null
echo demo-owner-password | "$rapctl" step-up --password-stdin >/dev/null
"$rapctl" clusters create --slug main --name "Main mesh" >/dev/null
"$rapctl" --json join-tokens create main --max-uses 4 --ttl 600 --description "make demo" 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >"$root/join-token"
chmod 600 "$root/join-token"
for n in entry relay relay2 exit; do
  mkdir -p "$root/agents/$n"
  # The mesh: the relays listen for fabric sessions; the entry (client ingress for users) and the
  # exit (a connector, as behind NAT) only dial out, so user traffic crosses a relay (the second
  # one is the alternate route a flow moves to when its relay dies).
  case $n in
    entry) mesh="\"client_ingress_listen\": \"127.0.0.1:$((base + 22))\", \"user_socket_dir\": \"$root/run\", \"metrics_listen\": \"127.0.0.1:$((base + 64))\"," ;;
    relay) mesh="\"fabric_listen\": \"127.0.0.1:$((base + 21))\", \"metrics_listen\": \"127.0.0.1:$((base + 65))\"," ;;
    relay2) mesh="\"fabric_listen\": \"127.0.0.1:$((base + 23))\", \"metrics_listen\": \"127.0.0.1:$((base + 67))\"," ;;
    exit) mesh="\"metrics_listen\": \"127.0.0.1:$((base + 66))\"," ;;
  esac
  cat >"$root/agents/$n.json" <<JSON
{"state_dir": "$root/agents/$n", "heartbeat_interval_seconds": 2, "enroll_poll_ms": 300, $mesh
 "memberships": [{"cluster": "main", "control_url": "https://127.0.0.1:$cport",
                  "control_ca_file": "$ca_file", "join_token_file": "$root/join-token"}]}
JSON
  "$agent" run --config "$root/agents/$n.json" >"$root/logs/agent-$n.log" 2>&1 &
  echo $! >"$root/pids/agent-$n"
done
declare -A role=([entry]=entry-node [relay]=relay-node [relay2]=relay-node [exit]=exit-node)
for n in entry relay relay2 exit; do
  req=""
  for _ in $(seq 1 100); do
    req=$("$agent" status --json --config "$root/agents/$n.json" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["memberships"][0].get("request_id",""))')
    [ -n "$req" ] && break
    sleep 0.2
  done
  if [ -z "$req" ]; then
    echo "demo: agent $n did not file a join request; see $root/logs/agent-$n.log" >&2
    exit 1
  fi
  node=$("$rapctl" --json join-requests approve main "$req" --name "$n" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["node"]["id"])')
  "$rapctl" nodes set-roles main "$node" --role "${role[$n]}" >/dev/null
done
for _ in $(seq 1 100); do
  online=$("$rapctl" --json nodes list main |
    python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n.get("health") == "online"))')
  [ "$online" -ge 4 ] && break
  sleep 0.3
done
echo "demo: 4 node agents enrolled (join token + approval) and heartbeating:"
"$rapctl" nodes list main
# Signed configuration: each agent fetches its artifacts, verifies them (signature, signer,
# cluster, scope, versions) and applies them; wait until all four run on a verified snapshot.
for n in entry relay relay2 exit; do
  for _ in $(seq 1 100); do
    v=$("$agent" status --json --config "$root/agents/$n.json" |
      python3 -c 'import json,sys; m=json.load(sys.stdin)["memberships"][0]; print(m.get("config",{}).get("applied_versions",{}).get("cluster_snapshot",0))')
    [ "${v:-0}" -ge 1 ] && break
    sleep 0.2
  done
done
echo "demo: the relay agent runs on a verified config snapshot (applied versions, signer):"
"$agent" status --config "$root/agents/relay.json"

# --- web console: a node group tree for the topology map, an organization admin, and TOTP for
# the platform owner (sign-in and step-up then need a code: scripts/totp.py prints it) ---
japi() {  # method path [json] -> response body (owner's elevated session)
  curl -sk -X "$1" "$api$2" -H "authorization: Bearer $bearer" -H 'content-type: application/json' \
    ${3:+-d "$3"}
}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
japi POST /auth/step-up '{"password":"demo-owner-password"}' >/dev/null
eu=$(japi POST /clusters/main/node-groups '{"name":"eu","parent":null}' | field 'd["node_group"]["id"]')
ber=$(japi POST /clusters/main/node-groups "{\"name\":\"berlin\",\"parent\":\"$eu\"}" | field 'd["node_group"]["id"]')
fra=$(japi POST /clusters/main/node-groups "{\"name\":\"frankfurt\",\"parent\":\"$eu\"}" | field 'd["node_group"]["id"]')
japi GET /clusters/main/nodes | field '"\n".join(n["id"] + " " + n["name"] for n in d["nodes"])' |
  while read -r id name; do
    g=$ber
    [ "$name" = exit ] && g=$fra
    japi PUT "/clusters/main/nodes/$id/group" "{\"group\":\"$g\"}" >/dev/null
  done
japi POST /users '{"email":"admin@acme.demo","password":"demo-admin-password"}' >/dev/null
japi POST /orgs/acme/members '{"email":"admin@acme.demo","role":"org_admin"}' >/dev/null
japi POST /orgs/acme/resources '{"name":"build-server","protocol":"rdp","address":"10.20.0.5:3389"}' >/dev/null
totp_secret=$(japi POST /me/totp/enroll '{}' | field 'd["secret_base32"]')
japi POST /me/totp/confirm "{\"code\":\"$(scripts/totp.py "$totp_secret")\"}" >/dev/null
echo "$totp_secret" >"$root/owner-totp-secret"
chmod 600 "$root/owner-totp-secret"

# --- TCP application access through entry -> relay -> exit ---
# A web server behind the exit (the "intranet" of organization acme), an egress pool backed by
# the exit node, a TCP resource in it, and a user whom a policy allows to use it.
mkdir -p "$root/intranet"
echo "hello from the acme intranet, reached through entry -> relay -> exit" >"$root/intranet/index.html"
python3 -m http.server --bind 127.0.0.1 $((base + 40)) --directory "$root/intranet" >"$root/logs/intranet.log" 2>&1 &
echo $! >"$root/pids/intranet"
exit_id=$(japi GET /clusters/main/nodes | field '[n["id"] for n in d["nodes"] if n["name"] == "exit"][0]')
pool=$(japi POST /orgs/acme/egress-pools '{"name":"demo-site","description":"the demo exit"}' | field 'd["egress_pool"]["id"]')
japi PUT "/orgs/acme/egress-pools/$pool/nodes" "{\"nodes\":[{\"cluster\":\"main\",\"node\":\"$exit_id\"}]}" >/dev/null
res=$(japi POST /orgs/acme/resources "{\"name\":\"intranet\",\"protocol\":\"tcp\",\"address\":\"127.0.0.1:$((base + 40))\",\"egress_pool\":\"demo-site\"}" | field 'd["resource"]["id"]')
japi POST /users '{"email":"user@acme.demo","password":"demo-user-password"}' >/dev/null
japi POST /orgs/acme/members '{"email":"user@acme.demo","role":"org_member"}' >/dev/null
japi POST /orgs/acme/policies "{\"name\":\"intranet\",\"service\":\"tcp\",\"users\":[\"user@acme.demo\"],\"resources\":[\"$res\"]}" >/dev/null
user_cfg=$root/rapctl-user.json
echo demo-user-password | RAPCTL_CONFIG=$user_cfg "$rapctl" --ca-file "$ca_file" login \
  --server "https://127.0.0.1:$cport" --email user@acme.demo --password-stdin >/dev/null
echo "demo: waiting for the mesh (entry and exit dial the relay; sessions reach the control plane)"
routed=""
for _ in $(seq 1 60); do
  RAPCTL_CONFIG=$user_cfg "$rapctl" connect intranet --org acme --listen 127.0.0.1:$((base + 90)) --once \
    >"$root/logs/rapctl-connect.log" 2>&1 &
  cpid=$!
  sleep 0.5
  routed=$(curl -s --max-time 5 "http://127.0.0.1:$((base + 90))/" || true)
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  [ -n "$routed" ] && break
  sleep 1
done
if [ -z "$routed" ]; then
  echo "demo: TCP access did not come up; see $root/logs (agent-*.log, rapctl-connect.log)" >&2
  tail -5 "$root"/logs/agent-*.log "$root/logs/rapctl-connect.log" >&2
  exit 1
fi
echo "demo: TCP access works: user@acme.demo -> rapctl connect -> entry -> relay -> exit -> intranet:"
echo "  $routed"
# The same from the entry's own host: the entry node listens (no forwarder, no TLS leg).
RAPCTL_CONFIG=$user_cfg "$rapctl" connect intranet --org acme --listen 127.0.0.1:$((base + 91)) \
  --local-entry --user-socket "$root/run/main.sock" >"$root/logs/rapctl-local-entry.log" 2>&1 &
lpid=$!
local_routed=""
for _ in $(seq 1 20); do
  sleep 0.5
  local_routed=$(curl -s --max-time 5 "http://127.0.0.1:$((base + 91))/" || true)
  [ -n "$local_routed" ] && break
done
kill "$lpid" 2>/dev/null || true
wait "$lpid" 2>/dev/null || true
if [ -z "$local_routed" ]; then
  echo "demo: the entry-node listener did not work; see $root/logs/rapctl-local-entry.log" >&2
  tail -5 "$root/logs/rapctl-local-entry.log" "$root/logs/agent-entry.log" >&2
  exit 1
fi
echo "demo: entry-node listener works too (rapctl connect --local-entry on the entry's host)"
relayed=0
for p in $((base + 65)) $((base + 67)); do
  r=$(curl -s "http://127.0.0.1:$p/metrics" | awk '/rap_mesh_events_total\{event="routes_relayed"\}/{print $2}')
  relayed=$((relayed + ${r:-0}))
done
echo "demo: routes relayed by the relay nodes so far: $relayed"
echo "$build" >"$root/build-dir"

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

console_note="Web console (platform owner console and organization admin panel):"
[ ${#web_args[@]} -eq 0 ] && console_note="Web console: not built (run make web, then make demo again)"
cat <<EOT

$console_note
  URL:            https://127.0.0.1:$cport/   (self-signed certificate: accept it in the browser)
  Platform owner: owner@demo.local / demo-owner-password + TOTP code: scripts/totp.py $totp_secret
  Org admin:      admin@acme.demo / demo-admin-password (organization 'acme'; no platform pages)

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
  Control plane (HTTPS API, docs/API.md; self-signed certificate, hence -k):
    curl -sk https://127.0.0.1:$cport/healthz
    TOKEN=\$(curl -sk -X POST $api/login -d '{"email":"owner@demo.local","password":"demo-owner-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    curl -sk -H "authorization: Bearer \$TOKEN" $api/orgs
    curl -sk -H "authorization: Bearer \$TOKEN" $api/audit
    Control plane data (PostgreSQL + Redis, children of rap-control): $root/control
  rapctl (already logged in as the platform owner; export this to use it):
    export RAPCTL_CONFIG=$root/rapctl.json
    $rapctl nodes list main
    $rapctl join-requests list main
    $rapctl audit list --limit 10
    $rapctl audit verify
  Node agents (entry, relay, relay2, exit; enrolled through rap-control):
    $agent status --config $root/agents/relay.json
  Signed configuration (config-signing keys, published artifacts):
    $rapctl config keys main
    $rapctl config artifacts main
TCP access through the mesh (user@acme.demo, organization acme; entry -> relay -> exit):
    RAPCTL_CONFIG=$user_cfg $rapctl connect intranet --org acme --listen 127.0.0.1:8080
    curl http://127.0.0.1:8080/        # in another terminal
  On the entry node's host, the entry itself listens (no forwarder; only your uid may connect):
    RAPCTL_CONFIG=$user_cfg $rapctl connect intranet --org acme --listen 127.0.0.1:8081 --local-entry --user-socket $root/run/main.sock
  Mesh metrics and status of the agents' fabric (entry :$((base + 64)), relay :$((base + 65)), exit :$((base + 66))):
    curl -s http://127.0.0.1:$((base + 65))/metrics | grep -E 'rap_mesh|rap_tcp_access'
    curl -s http://127.0.0.1:$((base + 64))/status
  Who accessed what (audit, as the owner): $rapctl audit list --limit 10
Route failover: a 200 MB download runs, the relay carrying it is killed (SIGKILL), the flow moves
to the other relay and the download completes with the same checksum (route switch in status):
    scripts/demo-failover.sh
The rap-fabric nodes (edge, relay, exit, client) use a demo CA of their own; the agents' mesh above
uses the certificates the control plane issued.
EOT
