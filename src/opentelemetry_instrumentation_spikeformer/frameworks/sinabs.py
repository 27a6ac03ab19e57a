"""sinabs (SynSense): ``from_model`` conversion, NIR export/import, DYNAP-CNN /
Speck compilation; IAF/LIF neurons and their Squeeze variants."""

from __future__ import annotations

from typing import Any

from ..core.attributes import COMPILATION, CONVERSION
from ..core.targets import Target, nir_row
from .base import BT, SQUEEZE, Framework, NeuronRule


def _does_spike(module: Any) -> bool:
    return getattr(module, "does_spike", True) is not False  # ExpLeak integrates only


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
        # Squeeze layers take and return (batch * timesteps, ...).
        NeuronRule("SqueezeMixin", SQUEEZE, "v_mem", True, spiking=_does_spike),
        NeuronRule("StatefulLayer", BT, "v_mem", True, spiking=_does_spike),
    ),
    hardware=("speck2e", "speck2edevkit", "speck2f", "speck2fdevkit", "speck2fmodule", "speck2",
              "speck", "dynapcnndevkit", "dynapcnn"),
    unwrap=_spiking_model,
)
