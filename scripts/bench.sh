#!/usr/bin/env bash
# Runs every benchmark (release build) and prints each figure as a ratio to the baseline
# measured beside it in the same run. Not part of CI: figures depend on the machine.
# Usage: scripts/bench.sh BUILD_DIR [--quick]
set -euo pipefail
build=${1:-build/release}
quick=${2:-}
cd "$(dirname "$0")/.."
cmake --build "$build" --target bench_codec bench_session bench_route >/dev/null
echo "== codec (Google Benchmark; baseline: memcpy of the same bytes) =="
json=$(mktemp)
"$build/bench/bench_codec" --benchmark_format=json --benchmark_min_time=0.2 >"$json" 2>/dev/null
python3 - "$json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rate = {b["name"]: b.get("bytes_per_second") or b.get("items_per_second") for b in d["benchmarks"]}
for size in (1024, 16384, 262144):
    base = rate[f"BM_Baseline_Memcpy/{size}"]
    for op in ("EncodeData", "DecodeData"):
        r = rate[f"BM_{op}/{size}"]
        print(f"{op:>10} {size:>7} B: {r/1e9:8.2f} GB/s = {r/base:6.2f}x memcpy ({base/1e9:.2f} GB/s)")
print(f"control frame encode+decode: {rate['BM_EncodeDecodeSmallControl']/1e6:.1f} M frames/s")
PY
rm -f "$json"
echo "== sessions (loopback; baselines: plain TLS 1.3 socket pair, raw TCP) =="
if [ "$quick" = "--quick" ]; then
  "$build/bench/bench_session" --bytes 500000000 --rounds 2000 --sessions 200
else
  "$build/bench/bench_session" --bytes 4000000000 --rounds 10000 --sessions 1000
fi
echo "== TCP access through the mesh (loopback; baselines: ssh -L, stunnel pair, raw TCP) =="
if [ "$quick" = "--quick" ]; then
  "$build/bench/bench_route" --bytes 200000000 --rounds 1000
else
  "$build/bench/bench_route"
fi
