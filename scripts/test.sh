#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, builds, runs.
# Usage: scripts/test.sh [unit|e2e|all] (default all); extra args go to node --test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The remote end-to-end tests start real OpenSSH servers and use rsync (test/support/sshd.ts);
# the activation scripts' tests source them in zsh, fish and tcsh (test/e2e/activate.test.ts);
# libdeflate's headers build the native addon that unpacks wheels (native/).
if [ ! -x /usr/sbin/sshd ] || ! command -v rsync >/dev/null || [ ! -e /usr/include/libdeflate.h ] ||
  ! command -v zsh >/dev/null || ! command -v fish >/dev/null || ! command -v tcsh >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    # Waits for another apt holding the lock; refreshes the package lists only when installing
    # from the current ones fails (a fresh machine has none, an old one stale ones).
    apt_log=$(mktemp)
    apt_install() {
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
        openssh-server rsync zsh fish tcsh libdeflate-dev >"$apt_log" 2>&1
    }
    if ! apt_install; then
      { apt-get update -qq >"$apt_log" 2>&1 && apt_install; } || {
        tail -n 20 "$apt_log" >&2
        echo "test.sh: could not install openssh-server, rsync, zsh, fish, tcsh and libdeflate-dev with apt-get (needed by the ssh, activation and native unpacking tests)" >&2
        exit 1
      }
    fi
    rm -f "$apt_log"
  else
    echo "test.sh: /usr/sbin/sshd, rsync, zsh, fish, tcsh or libdeflate's headers are missing; install openssh-server, rsync, zsh, fish, tcsh and libdeflate-dev (the tests that need them are skipped)" >&2
  fi
fi
# npm install built the addon if libdeflate's headers were there then; with them, it must load,
# built from the sources as they are now.
if [ -e /usr/include/libdeflate.h ]; then
  addon=native/build/Release/pyferry_native.node
  if [ ! -e "$addon" ] || [ native/unzip.c -nt "$addon" ] || [ native/binding.gyp -nt "$addon" ]; then
    npm run -s build:native
  fi
  export PYFERRY_REQUIRE_NATIVE=1
fi
# A clean build, so that tests of deleted sources cannot linger in dist/.
rm -rf dist
node_modules/.bin/tsc -p .
node scripts/bundle.mjs
scope="${1:-all}"
[ $# -gt 0 ] && shift
case "$scope" in
  unit) dirs=(dist/test/unit) ;;
  e2e) dirs=(dist/test/e2e) ;;
  all) dirs=(dist/test/unit dist/test/e2e) ;;
  *) echo "usage: scripts/test.sh [unit|e2e|all]" >&2; exit 2 ;;
esac
mapfile -t files < <(find "${dirs[@]}" -name '*.test.js' | sort)
# Every temporary folder the tests make goes under one folder of this run, removed at the end
# with whatever a failed or killed test left there (tmpfs mounts included). Open to all like
# /tmp itself: some tests run programs as another user.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/pft-XXXXXX")
chmod 1777 "$run_tmp"
cleanup() {
  awk -v d="$run_tmp/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$run_tmp"
}
trap cleanup EXIT
status=0
TMPDIR="$run_tmp" node --test --test-concurrency=2 "$@" "${files[@]}" || status=$?
exit "$status"
