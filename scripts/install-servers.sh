#!/usr/bin/env bash
# Debian's prometheus (with promtool) and alertmanager (with amtool) for the
# collector-stack tests. Needs root or sudo; does nothing when already present.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-servers: need root to apt-get install ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-servers: apt-get install ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged services; the tests run their own on free ports.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
