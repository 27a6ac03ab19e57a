"""snntorch: NIR export and import; every ``SpikingNeuron`` (one step per call,
returning ``spk`` or ``(spk, mem)``) and the whole-sequence neurons."""

from __future__ import annotations

from typing import Any

from ..core.targets import nir_row
from .base import B, BINARY, SCALED, TB, Framework, NeuronRule


def _output(module: Any) -> str:
    factor = getattr(module, "graded_spikes_factor", 1.0)
    if isinstance(factor, (int, float)):
        return BINARY if factor == 1.0 else SCALED
    if getattr(factor, "requires_grad", True):
        return SCALED  # a learnable factor (nn.Parameter): may change after attach
    import torch  # a buffer (snntorch keeps 1.0 as a tensor); read once, at attach

    return BINARY if torch.equal(factor, torch.ones_like(factor)) else SCALED


FRAMEWORK = Framework(
    name="snntorch",
    packages=("snntorch",),
    tested_with="snntorch 1.0.0",
    targets=(
        nir_row("snntorch.export_nir", "export_to_nir", "snntorch", "module", "to_nir"),
        nir_row("snntorch.import_nir", "import_from_nir", "snntorch", "graph", "from_nir"),
    ),
    neurons=(
        # Whole sequence (T, B, ...) in one call: StateLeaky, LinearLeaky (a causal
        # convolution) and LeakyParallel (nn.RNN based).
        NeuronRule("StateLeaky", TB, None, True, output_of=_output, leaky=True),
        NeuronRule("LeakyParallel", TB, None, True, output_of=_output, leaky=True),
        NeuronRule("SpikingNeuron", B, "mem", False, state_arg=1, state_kwarg="mem",
                   output_of=_output, leaky=True),
    ),
)
