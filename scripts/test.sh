#!/usr/bin/env bash
# The test command: sets up everything on a fresh machine, then runs the suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k monitor).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-servers.sh
scripts/bootstrap.sh
# toolchains that cannot share .venv; tests/test_toolchain_venvs.py runs their tests there
scripts/toolchain-venv.sh loihi
scripts/toolchain-venv.sh akida
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
