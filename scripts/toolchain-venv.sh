#!/usr/bin/env bash
# Create ./.venv-<toolchain> with the project, the SDK, the test tools and one
# toolchain extra, for toolchains that cannot share ./.venv:
#   loihi  nengo 3.2.0 / nengo-loihi 1.1.0 need numpy < 2 (the main venv has numpy 2)
#   akida  proprietary licence: kept out of the environment the demo runs in
# No torch: the plugin's core imports none. Idempotent like bootstrap.sh: re-runs
# only when pyproject.toml or these scripts changed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv-lib.sh
name="${1:?usage: scripts/toolchain-venv.sh loihi|akida}"
case "$name" in
  loihi|akida) ;;
  *) echo "toolchain-venv: unknown toolchain '$name' (loihi or akida)" >&2; exit 64 ;;
esac
VENV=".venv-$name"
DEFINED_BY=(pyproject.toml scripts/toolchain-venv.sh scripts/venv-lib.sh)

make_venv "$VENV"
up_to_date "$VENV" "${DEFINED_BY[@]}" && exit 0
echo "toolchain-venv: installing into $VENV" >&2
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -e ".[sdk,test,$name]"
mark_installed "$VENV" "${DEFINED_BY[@]}"
