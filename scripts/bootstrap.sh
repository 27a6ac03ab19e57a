#!/usr/bin/env bash
# Create ./.venv and install the project with everything the demo and tests need.
# Idempotent: re-runs only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv-lib.sh
VENV="${SPIKEFORMER_VENV:-.venv}"
DEFINED_BY=(pyproject.toml scripts/bootstrap.sh scripts/venv-lib.sh)

make_venv "$VENV"
up_to_date "$VENV" "${DEFINED_BY[@]}" && exit 0
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
echo "bootstrap: installing into $VENV (first run takes a few minutes)" >&2
# torch first, pinned: a bare "torch" requirement would pull a multi-GB CUDA build.
# Where no CPU wheel is at hand, TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# takes PyTorch's CPU build from its own index.
pip install "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
# spikingjelly 2.0.0 declares torchvision/torchaudio, which would replace torch: no deps.
pip install --no-deps "spikingjelly==2.0.0"
pip install loguru h5py scipy matplotlib packaging numpy tqdm requests
pip install -e ".[sdk,snn,devices,bench,test,spinnaker]"
# syops 0.0.5 (the Spike-driven Transformer paper's counter, compared in docs/monitor.md):
# its declared deps pull torchvision, which would replace torch; it needs `progress`.
pip install --no-deps "syops==0.0.5" progress
mark_installed "$VENV" "${DEFINED_BY[@]}"
