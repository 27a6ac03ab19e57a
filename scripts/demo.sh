#!/usr/bin/env bash
# The main job: sets up .venv on a fresh machine, then runs the demo pipeline.
# Arguments go to the demo (scripts/demo.sh --exporter prometheus, --otlp, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec "${SPIKEFORMER_VENV:-.venv}/bin/spikeformer-otel" demo "$@"
