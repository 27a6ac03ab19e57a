"""snntorch: NIR export and import; every ``SpikingNeuron`` (one step per call,
returning ``spk`` or ``(spk, mem)``)."""

from __future__ import annotations

from ..core.targets import nir_row
from .base import B, Framework, NeuronRule

FRAMEWORK = Framework(
    name="snntorch",
    packages=("snntorch",),
    tested_with="snntorch 1.0.0",
    targets=(
        nir_row("snntorch.export_nir", "export_to_nir", "snntorch", "module", "to_nir"),
        nir_row("snntorch.import_nir", "import_from_nir", "snntorch", "graph", "from_nir"),
    ),
    neurons=(
        NeuronRule("SpikingNeuron", B, "mem", False, state_arg=1, state_kwarg="mem"),
    ),
)
