"""spikingjelly: the ann2snn converters (FX and module-tree) with their recipe
stages, calibration (``calibrate_qwen2_snn`` too) and per-layer replacement,
the transformer shape and recipe settings of what they convert; NIR exchange;
every ``BaseNode`` neuron."""

from __future__ import annotations

from typing import Any, Mapping

from ..core import attributes as a
from ..core import model_info
from ..core.targets import CALIBRATION, LAYER, STAGE, RowHooks, Target, nir_row
from .base import STEP_MODE, Framework, NeuronRule

_SJ = "spikingjelly.activation_based"
_STAGES = ("validate", "before_trace", "after_trace", "insert_observers", "replace", "finalize")
_MODULE_STAGES = ("validate", "convert_module")  # ModuleConversionRecipe (SpikeZIP, Qwen2)
# T of a recipe: STA, TD-equivalent and SpikeZIP hold it, Qwen2SNNRecipe in its config
_RECIPE_T = "self.recipe.time_steps or self.recipe.config.time_steps"
_SHAPE_KEYS = {"layers": a.TRANSFORMER_LAYERS, "heads": a.TRANSFORMER_HEADS,
               "kv_heads": a.TRANSFORMER_KV_HEADS, "embed_dim": a.TRANSFORMER_EMBED_DIM}


class TransformerShape(RowHooks):
    """Blocks, heads and width of the model a call gets (``ann`` or ``model``)
    and the recipe's mode string (STA: ``spiking_encoder`` / ``equivalent``;
    SpikeZIP: its model family)."""

    def on_start(self, call: Any, bound: Mapping[str, Any]) -> None:
        span = call.span
        if not span.is_recording():
            return
        model = bound.get("ann", bound.get("model"))
        for key, value in model_info.transformer_shape(model).items():
            span.set_attribute(_SHAPE_KEYS[key], value)
        recipe = getattr(call.instance, "recipe", None)
        mode = getattr(recipe, "mode", None) or getattr(recipe, "model_family", None)
        if isinstance(mode, str):
            span.set_attribute(a.RECIPE_MODE, mode)


_SHAPE = TransformerShape()


def _converter(qualname: str) -> Target:
    return Target(f"{_SJ}.ann2snn.converter", qualname, a.CONVERSION, "spikingjelly",
                  model="ann", recipe="self.recipe|type", timesteps=_RECIPE_T, hooks=_SHAPE)


FRAMEWORK = Framework(
    name="spikingjelly",
    packages=("spikingjelly",),
    tested_with="spikingjelly 2.0.0",
    targets=(
        _converter("FXConverter.convert"),
        _converter("ModuleConverter.convert"),
        *(Target(f"{_SJ}.ann2snn", f"FXConversionRecipe.{stage}", role=STAGE,
                 framework="spikingjelly", subclasses=True) for stage in _STAGES),
        Target(f"{_SJ}.ann2snn", "FXConversionRecipe.calibrate", role=CALIBRATION,
               framework="spikingjelly", subclasses=True, samples="self.dataloader|samples"),
        *(Target(f"{_SJ}.ann2snn", f"ModuleConversionRecipe.{stage}", role=STAGE,
                 framework="spikingjelly", subclasses=True) for stage in _MODULE_STAGES),
        # called by the user before ModuleConverter(Qwen2SNNRecipe(calibration, config))
        Target(f"{_SJ}.ann2snn.recipes.qwen2", "calibrate_qwen2_snn", role=CALIBRATION,
               framework="spikingjelly", root_span=True, model="model",
               timesteps="config.time_steps", hooks=_SHAPE,
               aliases=(f"{_SJ}.ann2snn.recipes", f"{_SJ}.ann2snn")),
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
