#!/usr/bin/env bash
# Create ./.venv-<toolchain> with the project, the SDK, the test tools and one
# toolchain extra, for toolchains that cannot share ./.venv:
#   loihi  nengo 3.2.0 / nengo-loihi 1.1.0 need numpy < 2 (the main venv has numpy 2)
#   akida  proprietary licence: kept out of the environment the demo runs in
# No torch: the plugin's core imports none. Idempotent like bootstrap.sh: re-runs
# only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/toolchain-venv.sh loihi|akida}"
case "$name" in
  loihi|akida) ;;
  *) echo "toolchain-venv: unknown toolchain '$name' (loihi or akida)" >&2; exit 64 ;;
esac
VENV=".venv-$name"
PY="${PYTHON:-python3}"

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "toolchain-venv: Python >= 3.11 required (found $("$PY" -V 2>&1))" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.bootstrap-stamp"
want="$(cat pyproject.toml scripts/toolchain-venv.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "toolchain-venv: installing into $VENV" >&2
"$VENV/bin/python" -m pip --disable-pip-version-check -q install -e ".[sdk,test,$name]"
echo "$want" > "$stamp"
