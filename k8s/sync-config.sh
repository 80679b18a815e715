#!/usr/bin/env bash
# Copies the models and policies the ConfigMaps carry into k8s/base/config/. With
# --check, fails if the copies differ from the sources instead (CI runs that).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=k8s/base/config
if [ "${1:-}" = "--check" ]; then
  diff -r models "$dest/models" >/dev/null && diff -r --exclude=calendar policies "$dest/policies" >/dev/null \
    || { echo "k8s/base/config is out of date: run k8s/sync-config.sh" >&2; exit 1; }
  exit 0
fi
rm -rf "$dest" && mkdir -p "$dest"
cp -r models "$dest/models"
mkdir -p "$dest/policies" && cp policies/*.toml "$dest/policies/"
