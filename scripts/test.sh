#!/usr/bin/env bash
# The test command: sets up everything on a fresh machine, then runs the suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k monitor).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-servers.sh
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
