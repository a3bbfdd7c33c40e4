#!/usr/bin/env bash
# Runs shiplog's whole test suite, after installing any system package the tests need.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p shiplog-indexer   # extra arguments go to the test runner
#
# Needs: Debian (apt-get) for busybox-static (the FROM-scratch test image), prometheus-alertmanager
# (the Alertmanager the alerting tests send to), tmux and python3-venv
# (the Python clients of the compatibility tests, from PyPI); a
# running Docker engine for the end-to-end tests (under CI=true they fail without one,
# elsewhere they say they were skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3 python3-venv)
# The alerting tests (tests/tests/alerts.rs) start a real Alertmanager on loopback.
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The compatibility tests (tests/tests/compat.rs) ship logs with real clients from PyPI,
# installed into a virtualenv that is made again only when it is missing or when
# tests/python/requirements.txt changed.
pyenv=target/pyenv
requirements=tests/python/requirements.txt
stamp="$pyenv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$pyenv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the Python clients of the compatibility tests into $pyenv"
  python3 -m venv "$pyenv"
  "$pyenv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
export SHIPLOG_PYTHON="$PWD/$pyenv/bin/python"

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
