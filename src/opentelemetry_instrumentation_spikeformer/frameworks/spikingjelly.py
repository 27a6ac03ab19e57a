"""spikingjelly: the ann2snn converters with their recipe stages, calibration
and per-layer replacement, NIR exchange; every ``BaseNode`` neuron."""

from __future__ import annotations

from ..core.attributes import CONVERSION
from ..core.targets import CALIBRATION, LAYER, STAGE, Target, nir_row
from .base import STEP_MODE, Framework, NeuronRule

_SJ = "spikingjelly.activation_based"
_STAGES = ("validate", "before_trace", "after_trace", "insert_observers", "replace", "finalize")

FRAMEWORK = Framework(
    name="spikingjelly",
    packages=("spikingjelly",),
    tested_with="spikingjelly 2.0.0",
    targets=(
        Target(f"{_SJ}.ann2snn.converter", "FXConverter.convert", CONVERSION, "spikingjelly",
               model="ann", recipe="self.recipe|type"),
        Target(f"{_SJ}.ann2snn.converter", "ModuleConverter.convert", CONVERSION,
               "spikingjelly", model="ann", recipe="self.recipe|type"),
        *(Target(f"{_SJ}.ann2snn", f"FXConversionRecipe.{stage}", role=STAGE,
                 framework="spikingjelly", subclasses=True) for stage in _STAGES),
        Target(f"{_SJ}.ann2snn", "FXConversionRecipe.calibrate", role=CALIBRATION,
               framework="spikingjelly", subclasses=True, samples="self.dataloader|samples"),
        Target(f"{_SJ}.ann2snn.recipes.rate_coding", "RateCodingRecipe._replace_layerwise",
               role=LAYER, framework="spikingjelly", layer="activation_node.target"),
        Target(f"{_SJ}.ann2snn.recipes.rate_coding", "RateCodingRecipe._replace_channelwise",
               role=LAYER, framework="spikingjelly", layer="activation_node.target"),
        nir_row(f"{_SJ}.nir_exchange.to_nir", "export_to_nir", "spikingjelly", "net", "to_nir",
                (f"{_SJ}.nir_exchange",)),
        nir_row(f"{_SJ}.nir_exchange.from_nir", "import_from_nir", "spikingjelly", "#0",
                "from_nir", (f"{_SJ}.nir_exchange",)),
    ),
    neurons=(
        # step_mode 's': one timestep per call; 'm': (T, B, ...) per call.
        NeuronRule("BaseNode", STEP_MODE, "v", False),
    ),
)
