#!/usr/bin/env bash
# Runs the whole test suite. Installs what the suite needs first (the Python grpcio
# packages of the cross-language test), so it works on a fresh machine; runs it with
# cargo-nextest where installed, else with cargo test. Backend: SQLite by default; for
# PostgreSQL set
#   CREDIT_HUB_TEST_BACKEND=postgres
#   CREDIT_HUB_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<an existing database>
# (each test creates its own database beside that one).
set -euo pipefail
cd "$(dirname "$0")/.."

python_ready() { python3 -c 'import grpc, grpc_reflection, grpc_health, cryptography, jcs, base58' 2>/dev/null; }
if ! python_ready; then
  # Into a virtual environment of its own (first on PATH for the tests): a system
  # Python marked externally managed (PEP 668, Debian 12, Ubuntu 24.04) refuses
  # packages installed beside its own. Without the venv module, pip as before.
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/credit-hub/python"
  # A venv left half-made (no pip: python3-venv was missing then) is made again.
  if [ -x "$venv/bin/python3" ] && ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
  fi
  if [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"; then
    export PATH="$venv/bin:$PATH"
  else
    rm -rf "$venv"
    echo "scripts/test.sh: no Python venv (install python3-venv); trying the system pip" >&2
  fi
  python_ready || python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --no-fail-fast "$@"
else
  exec cargo test --no-fail-fast "$@"
fi
