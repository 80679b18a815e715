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

if ! python3 -c 'import grpc, grpc_reflection, grpc_health, cryptography, jcs, base58' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --no-fail-fast "$@"
else
  exec cargo test --no-fail-fast "$@"
fi
