#!/usr/bin/env bash
# Bounded libFuzzer run of every fuzz target.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS      e.g. scripts/fuzz.sh build/fuzz 20   (make fuzz)
#                                               scripts/fuzz.sh build/fuzz 1800 (make fuzz-long)
#
# Each target runs for SECONDS on a scratch copy of its seed corpus (fuzz/corpus/<target>/); the
# repository is never written. Prints one summary line per target and exits non-zero when any
# target crashes, hangs (-timeout), runs out of memory or fails to start; crash inputs are kept
# under the printed directory (FUZZ_ARTIFACT_DIR, default a fresh temp dir).
# Environment: FUZZ_TARGETS="a b" to run a subset; FUZZ_JOBS=N parallel targets (default 1 —
# the targets share the machine's cores); FUZZ_KEEP=1 keeps the scratch corpora.
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR SECONDS" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
build_dir=$1
seconds=$2
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || usage

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets=${FUZZ_TARGETS:-"fuzz_frame_decoder fuzz_session fuzz_config_artifact fuzz_route"}
jobs=${FUZZ_JOBS:-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/rap-fuzz.XXXXXX")
artifacts=${FUZZ_ARTIFACT_DIR:-$work/artifacts}
mkdir -p "$artifacts"
cleanup() {
  if [[ ${FUZZ_KEEP:-0} == 1 ]]; then return; fi
  # Keep artifacts (crash inputs) if there are any; drop the scratch corpora.
  rm -rf "$work"/corpus-* "$work"/*.log.tmp
  if [[ -z $(ls -A "$artifacts" 2>/dev/null) && $artifacts == "$work/artifacts" ]]; then
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Report every sanitizer finding as a crash, with symbolized stacks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

run_target() {
  local t=$1
  local bin="$build_dir/fuzz/$t"
  local log="$work/$t.log"
  local corpus="$work/corpus-$t"
  local art="$artifacts/$t/"
  mkdir -p "$corpus" "$art"
  if [[ ! -x $bin ]]; then
    echo "missing $bin (build with: cmake --preset fuzz && cmake --build --preset fuzz)" >"$log"
    echo 127 >"$work/$t.rc"
    return
  fi
  if [[ -d $repo_root/fuzz/corpus/$t ]]; then
    cp -r "$repo_root/fuzz/corpus/$t/." "$corpus/"
  fi
  # Per-target extra flags: fuzz/<target>.options, one flag per line, # comments.
  local extra=()
  if [[ -f $repo_root/fuzz/$t.options ]]; then
    mapfile -t extra < <(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
      "$repo_root/fuzz/$t.options" | grep -v '^$')
  fi
  # FUZZ_SEED fixes libFuzzer's seed (CI sets 1) so a CI failure reproduces with the same run;
  # unset, every run explores differently (use that for long local runs).
  local seed=()
  if [[ -n ${FUZZ_SEED:-} ]]; then seed=(-seed="$FUZZ_SEED"); fi
  local rc=0
  "$bin" "$corpus" "${seed[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=70000 \
    -print_final_stats=1 -artifact_prefix="$art" -close_fd_mask=1 "${extra[@]}" \
    >"$log" 2>&1 </dev/null || rc=$?
  echo "$rc" >"$work/$t.rc"
}

summarize() {
  local t=$1
  local log="$work/$t.log"
  local art="$artifacts/$t/"
  local bin="$build_dir/fuzz/$t"
  local rc
  rc=$(cat "$work/$t.rc")
  local execs eps cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line ("#N DONE cov: X ft: Y corp: Z/..."), or whatever came last.
  local status
  status=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$status")
  local verdict=ok
  [[ $rc == 0 ]] || verdict=FAILED
  printf '%-20s %-6s execs=%s exec/s=%s cov=%s ft=%s corpus=%s time=%ss\n' \
    "$t" "$verdict" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$seconds"
  if [[ $rc != 0 ]]; then
    echo "---- $t: exit code $rc; log tail ($log):"
    grep -E 'ERROR: |SUMMARY: |fuzz oracle violated|runtime error|Test unit written|^missing ' "$log" | head -20 || true
    tail -n 40 "$log" | sed 's/^/    /'
    local found
    found=$(find "$art" -type f 2>/dev/null | head -5)
    if [[ -n $found ]]; then
      echo "---- $t: crash input(s) saved:"
      echo "$found" | sed 's/^/    /'
      echo "    reproduce: $bin <file>"
    fi
  fi
}

echo "fuzzing for ${seconds}s per target: $targets (scratch: $work)"
pids=()
for t in $targets; do
  if [[ $jobs -gt 1 ]]; then
    run_target "$t" &
    pids+=($!)
    while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
  else
    run_target "$t"
  fi
done
for p in "${pids[@]}"; do wait "$p" || true; done

failed=0
for t in $targets; do
  summarize "$t"
  [[ $(cat "$work/$t.rc") == 0 ]] || failed=1
done
if [[ $failed != 0 ]]; then
  FUZZ_KEEP=1  # keep logs and inputs for inspection
  echo "fuzzing FAILED (logs and artifacts under $work; artifacts: $artifacts)"
  exit 1
fi
echo "fuzzing passed"
