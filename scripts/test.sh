#!/usr/bin/env bash
# Runs shiplog's whole test suite, after installing any system package the tests need.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p shiplog-indexer   # extra arguments go to the test runner
#
# Needs: Debian (apt-get) for busybox-static (the FROM-scratch test image) and tmux; a
# running Docker engine for the end-to-end tests (under CI=true they fail without one,
# elsewhere they say they were skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "warning: no Docker engine answers; the Docker tests will be skipped (or fail under CI=true)" >&2
fi

# The end-to-end tests run the real binary.
cargo build -p shiplog --bin shiplog

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
