#!/usr/bin/env bash
# Route failover in the running `make demo` (issue 8): downloads 200 MB from the demo intranet
# through rapctl connect -> entry -> relay -> exit, kills the relay carrying the flow with SIGKILL
# a second in, and shows the download completing intact on the other relay, with the route switch
# as the entry reports it. Restarts the killed relay afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/.demo
base=${DEMO_PORT_BASE:-7440}
[ -f "$root/build-dir" ] || { echo "demo-failover: run 'make demo' first" >&2; exit 1; }
build=$(cat "$root/build-dir")
rapctl=$PWD/$build/tools/rapctl/rapctl
agent=$PWD/$build/tools/rap-node-agent/rap-node-agent
status() { curl -s "http://127.0.0.1:$((base + 64))/status"; }

big=$root/intranet/big.bin
[ -f "$big" ] || head -c 200000000 /dev/urandom >"$big"
RAPCTL_CONFIG=$root/rapctl-user.json "$rapctl" connect intranet --org acme \
  --listen 127.0.0.1:$((base + 91)) >"$root/logs/rapctl-failover.log" 2>&1 &
cpid=$!
trap 'kill $cpid 2>/dev/null || true' EXIT
sleep 1
echo "demo-failover: downloading 200 MB at 40 MB/s through the mesh"
curl -s --limit-rate 40M "http://127.0.0.1:$((base + 91))/big.bin" -o "$root/big.received" &
dl=$!
sleep 1.5
carrier=$(status | python3 -c '
import json, sys
flows = json.load(sys.stdin).get("open_flows", [])
print(next((f["hops"][1] for f in flows if len(f.get("hops", [])) == 3), ""))')
[ -n "$carrier" ] || { echo "demo-failover: no relayed flow is open" >&2; exit 1; }
name=$(RAPCTL_CONFIG=$root/rapctl.json "$rapctl" --json nodes list main |
  python3 -c "import json,sys; print([n['name'] for n in json.load(sys.stdin)['nodes'] if n['id'] == '$carrier'][0])")
echo "demo-failover: the flow crosses '$name'; killing its agent (SIGKILL)"
kill -9 "$(cat "$root/pids/agent-$name")"
wait $dl
if cmp -s "$big" "$root/big.received"; then
  echo "demo-failover: download complete and identical ($(stat -c %s "$root/big.received") bytes)"
else
  echo "demo-failover: download differs or is incomplete" >&2
  exit 1
fi
echo "demo-failover: route switches the entry saw (rap-node-agent status, 'route_health'):"
status | python3 -c '
import json, sys
for s in json.load(sys.stdin)["route_health"]["switches"]:
    print("  flow %s: route %s -> %s after %.1f ms (%s)" % (s["flow"][:8], s["from"][:8], s["to"][:8], s["ms"], s["detail"]))'
"$agent" run --config "$root/agents/$name.json" >>"$root/logs/agent-$name.log" 2>&1 &
echo $! >"$root/pids/agent-$name"
echo "demo-failover: restarted '$name'; the console's topology map shows it rejoin"
