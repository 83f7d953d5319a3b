#!/usr/bin/env bash
# The Python grpcio client test (tests/python): a venv under target/python-venv with the
# pinned packages, the discreet binary, then pytest. Run by .ci/test; runs with no standard
# input and exits non-zero when a test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never

venv=target/python-venv
if ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
  # Debian's python3 ships venv without ensurepip: that is the python3-venv package.
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null
    apt-get install -y -q python3-venv </dev/null
  fi
  python3 -m venv --clear "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt </dev/null

cargo build -q -p discreet-cli
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export DISCREET_BIN="${DISCREET_BIN:-$target_dir/debug/discreet}"
"$venv/bin/python" -m pytest -q tests/python </dev/null
