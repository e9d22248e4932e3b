#!/usr/bin/env bash
# Builds the web console (web/ -> web/dist): `npm ci` when package-lock.json changed since the
# last install, then typecheck (tsc --noEmit) + `vite build` when a source is newer than the last
# build. Silent and quick when everything is up to date. Used by make build/test/demo (make web).
set -euo pipefail
cd "$(dirname "$0")/../web"
if ! command -v npm >/dev/null 2>&1; then
  echo "web: npm not found (scripts/bootstrap.sh installs nodejs and npm)" >&2
  exit 1
fi
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
stamp=node_modules/.rap-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "web: npm ci"
  npm ci --no-progress --loglevel=error >/tmp/rap-web-npm.log 2>&1 || {
    tail -30 /tmp/rap-web-npm.log >&2
    echo "web: npm ci failed (log: /tmp/rap-web-npm.log)" >&2
    exit 1
  }
  touch "$stamp"
fi
if [ -f dist/index.html ] &&
  [ -z "$(find src index.html vite.config.ts tsconfig.json package-lock.json -newer dist/index.html -print -quit)" ]; then
  exit 0
fi
echo "web: building the console (tsc --noEmit + vite build)"
npm run --silent build >/tmp/rap-web-build.log 2>&1 || {
  tail -40 /tmp/rap-web-build.log >&2
  echo "web: build failed (log: /tmp/rap-web-build.log)" >&2
  exit 1
}
echo "web: built web/dist"
