#!/usr/bin/env bash
# clang-tidy over our sources (src/, tools/) with the committed .clang-tidy; warnings are errors.
# Usage: scripts/lint.sh BUILD_DIR   (needs compile_commands.json from the debug preset)
set -euo pipefail
build=${1:-build/debug}
cd "$(dirname "$0")/.."
# Only files that are part of the build (listed in the compile database).
files=$(python3 -c '
import json, os, sys
root = os.getcwd()
seen = set()
for e in json.load(open(sys.argv[1] + "/compile_commands.json")):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), root)
    if f.startswith(("src/", "tools/")) and f not in seen:
        seen.add(f)
        print(f)
' "$build" | sort)
jobs=$(nproc)
echo "lint: clang-tidy on $(echo "$files" | wc -l) files"
fail=0
# shellcheck disable=SC2086
printf '%s\n' $files | xargs -P "$jobs" -I{} sh -c \
  'out=$(clang-tidy -quiet --extra-arg=-Wno-unknown-warning-option -p "$0" "$1" 2>/dev/null) || { echo "$out"; exit 1; }' "$build" {} || fail=1
if [ $fail -ne 0 ]; then echo "lint: clang-tidy found problems" >&2; exit 1; fi
echo "lint: clean"
