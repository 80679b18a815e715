#!/usr/bin/env bash
# Copies the models, policies and working-day calendars the ConfigMaps carry into k8s/base/config/. With
# --check, fails if the copies differ from the sources instead (CI runs that).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=k8s/base/config
if [ "${1:-}" = "--check" ]; then
  diff -r models "$dest/models" >/dev/null && diff -r --exclude=calendar policies "$dest/policies" >/dev/null \
    && diff -r policies/calendar "$dest/calendar" >/dev/null \
    || { echo "k8s/base/config is out of date: run k8s/sync-config.sh" >&2; exit 1; }
  # A model or policy reaches the pods only if its ConfigMap lists it.
  for f in models/*.toml policies/*.toml; do
    grep -q "config/$f\$" k8s/base/kustomization.yaml \
      || { echo "k8s/base/kustomization.yaml: no ConfigMap carries $f" >&2; exit 1; }
  done
  for f in policies/calendar/*.toml; do
    grep -q "config/calendar/$(basename "$f")\$" k8s/base/kustomization.yaml \
      || { echo "k8s/base/kustomization.yaml: credit-hub-calendar lacks $f" >&2; exit 1; }
  done
  # A vetting policy reaches the pods only if the ConfigMap carries it and the
  # projected models volume maps it into vetting/ (by hand: keys cannot hold a '/').
  for f in models/vetting/*.toml; do
    name=$(basename "$f")
    grep -q "config/models/vetting/$name" k8s/base/kustomization.yaml \
      || { echo "k8s/base/kustomization.yaml: credit-hub-vetting lacks $name" >&2; exit 1; }
    for d in k8s/overlays/*/deployment.yaml; do
      grep -q "path: vetting/$name" "$d" \
        || { echo "$d: the models volume does not map vetting/$name" >&2; exit 1; }
    done
  done
  exit 0
fi
rm -rf "$dest" && mkdir -p "$dest"
cp -r models "$dest/models"
mkdir -p "$dest/policies" && cp policies/*.toml "$dest/policies/"
mkdir -p "$dest/calendar" && cp policies/calendar/*.toml "$dest/calendar/"
