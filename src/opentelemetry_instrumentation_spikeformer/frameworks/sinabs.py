"""sinabs (SynSense): ``from_model`` conversion, NIR export/import, DYNAP-CNN /
Speck compilation; IAF/LIF neurons and their Squeeze variants, the spike
encoders and ``SumPool2d``."""

from __future__ import annotations

from typing import Any

from ..core.attributes import COMPILATION, CONVERSION
from ..core.targets import Target, nir_row
from .base import (BINARY, BT, COUNT, ENCODER, GRADED, IGNORE, ROUTE, SQUEEZE, T_ONLY, Framework,
                   NeuronRule)


def _does_spike(module: Any) -> bool:
    return getattr(module, "does_spike", True) is not False  # ExpLeak integrates only


def _spike_output(module: Any) -> str:
    fn = getattr(module, "spike_fn", None)
    name = getattr(fn, "__name__", "")
    return BINARY if name == "SingleSpike" else COUNT  # MultiSpike: counts per step


def _leaky(module: Any) -> bool:
    return not type(module).__name__.startswith("IAF")


def _spiking_model(network: Any) -> Any:
    inner = getattr(network, "spiking_model", None)
    return inner if hasattr(inner, "modules") else None


FRAMEWORK = Framework(
    name="sinabs",
    packages=("sinabs",),
    tested_with="sinabs 3.1.3",
    targets=(
        Target("sinabs.from_torch", "from_model", CONVERSION, "sinabs",
               model="model", timesteps="num_timesteps", aliases=("sinabs",)),
        # DYNAP-CNN / Speck: importing these needs SynSense's real samna (not on PyPI).
        Target("sinabs.backend.dynapcnn.dynapcnn_network", "DynapcnnNetwork.__init__",
               COMPILATION, "sinabs", model="snn", hardware_value="dynapcnn"),
        Target("sinabs.backend.dynapcnn.dynapcnn_network", "DynapcnnNetwork.make_config",
               COMPILATION, "sinabs", model="self", hardware="device"),
        nir_row("sinabs.nir", "to_nir", "sinabs", "module", "to_nir", ("sinabs",)),
        nir_row("sinabs.nir", "from_nir", "sinabs", "node", "from_nir", ("sinabs",)),
    ),
    neurons=(
        # Leaky integrators (does_spike False): no events.
        NeuronRule("ExpLeakSqueeze", SQUEEZE, "v_mem", True, GRADED, role=IGNORE),
        NeuronRule("ExpLeak", BT, "v_mem", True, GRADED, role=IGNORE),
        # Squeeze layers take and return (batch * timesteps, ...).
        NeuronRule("SqueezeMixin", SQUEEZE, "v_mem", True, spiking=_does_spike,
                   output_of=_spike_output, leaky=_leaky),
        NeuronRule("StatefulLayer", BT, "v_mem", True, spiking=_does_spike,
                   output_of=_spike_output, leaky=_leaky),  # IAF, LIF, ALIF, *Recurrent
        # [C, H, W] image -> [T, C, H, W] spikes; [C, T] signal -> [T, C]: no batch dim.
        NeuronRule("Img2SpikeLayer", T_ONLY, None, True, role=ENCODER),
        NeuronRule("Sig2SpikeLayer", T_ONLY, None, True, role=ENCODER),
        # LPPool2d(p=1): pow/sign/abs at the aten level; counted as the sum pooling it is.
        NeuronRule("SumPool2d", BT, None, True, COUNT, role=ROUTE),
    ),
    hardware=("speck2e", "speck2edevkit", "speck2f", "speck2fdevkit", "speck2fmodule", "speck2",
              "speck", "dynapcnndevkit", "dynapcnn"),
    unwrap=_spiking_model,
)
