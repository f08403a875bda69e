#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, builds, runs.
# Usage: scripts/test.sh [unit|e2e|all] (default all); extra args go to node --test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# A clean build, so that tests of deleted sources cannot linger in dist/.
rm -rf dist
node_modules/.bin/tsc -p .
scope="${1:-all}"
[ $# -gt 0 ] && shift
case "$scope" in
  unit) dirs=(dist/test/unit) ;;
  e2e) dirs=(dist/test/e2e) ;;
  all) dirs=(dist/test/unit dist/test/e2e) ;;
  *) echo "usage: scripts/test.sh [unit|e2e|all]" >&2; exit 2 ;;
esac
mapfile -t files < <(find "${dirs[@]}" -name '*.test.js' | sort)
exec node --test --test-concurrency=2 "$@" "${files[@]}"
