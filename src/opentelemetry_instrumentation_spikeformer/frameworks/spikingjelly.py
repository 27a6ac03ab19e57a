"""spikingjelly: the ann2snn converters (FX and module-tree) with their recipe
stages, calibration (``calibrate_qwen2_snn`` too) and per-layer replacement,
the transformer shape and recipe settings of what they convert; NIR exchange;
every neuron, spike encoder and ann2snn operator of spikingjelly 2.0.0 (rules
below, most specific first)."""

from __future__ import annotations

from typing import Any, Mapping

from ..core import attributes as a
from ..core import model_info
from ..core.targets import CALIBRATION, LAYER, STAGE, RowHooks, Target, nir_row
from .base import (B, BINARY, CONSUMER, COUNT, ENCODER, GRADED, IGNORE, OPERATOR, SCALED,
                   SIGNED, STEP_MODE, TB, Framework, NeuronRule)

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



def _multi_step(module: Any) -> bool:
    return getattr(module, "step_mode", "s") == "m"


def _liaf_output(module: Any) -> str:
    # 's' returns act(v); 'm' falls back to LIFNode's multi-step path (spikes).
    return BINARY if _multi_step(module) else GRADED


def _few_spike_output(module: Any) -> str:
    # 'm': [K, ...] of d_k * z_k (spikes with an amplitude); 's': their sum.
    return SCALED if _multi_step(module) else GRADED


def _few_spike_layout(module: Any) -> str:
    return TB if _multi_step(module) else B


def _leaky(module: Any) -> bool:
    return hasattr(module, "tau") or hasattr(module, "w")  # LIF family, PLIF (w = 1/tau)


def _node(base: str, output: str = BINARY, **kwargs: Any) -> NeuronRule:
    """A MemoryModule neuron: 's' one step per call, 'm' (T, B, ...) per call."""
    return NeuronRule(base, STEP_MODE, kwargs.pop("state", "v"), False, output, **kwargs)


def _sequence(base: str, output: str = BINARY, role: str = "neuron", **kwargs: Any) -> NeuronRule:
    """A multi-step-only module: each call is a whole (T, B, ...) sequence."""
    return NeuronRule(base, TB, kwargs.pop("state", None), True, output, role=role, **kwargs)


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
        # Look-alikes that emit no spikes (they decode the membrane).
        _sequence("NonSpikingBaseNode", GRADED, IGNORE),
        _sequence("NoisyNonSpikingBaseNode", GRADED, IGNORE),
        # neuron/: BaseNode subclasses with their own output kind first.
        _node("TernaryIFNode", SIGNED),
        _node("TernaryLIFNode", SIGNED, leaky=True),
        _node("ILIFNode", COUNT, leaky=True),  # integer multi-level spikes 0..D
        _node("LIAFNode", GRADED, output_of=_liaf_output, leaky=True),
        _node("BaseNode", leaky=_leaky),  # IF, LIF, PLIF, QIF, EIF, Izhikevich, KLIF, OTTT ...
        _node("SimpleBaseNode", leaky=_leaky),
        _sequence("GatedLIFNode", state="v", leaky=True),  # T fixed at construction
        _sequence("PSN"),  # parallel spiking neuron: all T at once, no membrane
        _node("MaskedPSN", state=None),
        _node("SlidingPSN", state=None),
        _sequence("DSRIFNode", SCALED),  # spike x v_threshold
        _sequence("DSRLIFNode", SCALED, leaky=True),  # spike x v_threshold / delta_t
        _sequence("ILCBaseNode"),  # MultiStepModule, membrane in local variables
        _sequence("NoisyBaseNode", leaky=True),
        NeuronRule("FewSpikeNode", B, None, True, GRADED, output_of=_few_spike_output,
                   layout_fn=_few_spike_layout),  # also HGNode, OutlierAwareThresholdNode
        _node("FlexSN", state=None),  # user-defined core; first output is the spikes
        _node("ActivationAwareIFNode"),  # ann2snn (Qwen2 encoders): binary, per-channel v_th
        _node("STBIFNode", SCALED, state="acc_q"),  # SpikeZIP: {-q, 0, +q} x q_threshold
        # encoding/ and the ann2snn encoders.
        _node("StatelessEncoder", role=ENCODER, state=None),  # PoissonEncoder
        NeuronRule("StatefulEncoder", B, None, False, role=ENCODER),  # Latency/Periodic/Phase
        _sequence("PopSpikeEncoderDeterministic", role=ENCODER),  # (B, n) -> (T, B, n*pop)
        _sequence("PopSpikeEncoderRandom", role=ENCODER),
        NeuronRule("PopEncoder", B, None, True, GRADED, role=IGNORE),  # real-valued fields
        _node("_STASpikeEncoder", SCALED, role=ENCODER, state="mem"),  # trunc(mem/θ)·θ
        NeuronRule("_STAConstant", B, None, True, GRADED, role=IGNORE),  # constant at t=0
        # Qwen2SNNModel calls encoder.encode(x) -> (T, ...): (pos - neg) spikes x scale;
        # its two ActivationAwareIFNodes are inside it (counted as the encoder).
        _sequence("SignedQCFSSequenceEncoder", SCALED, ENCODER, entry="encode"),
        # ann2snn time-differential operators: graded increments of f(cumsum x).
        _node("TDLinear", GRADED, role=CONSUMER, consumes="linear", state="y_cum"),
        _node("TDConv2d", GRADED, role=CONSUMER, consumes="conv", state="y_cum"),
        _node("TDMultiheadAttention", GRADED, role=CONSUMER, consumes="mha", state="y_cum"),
        _node("TDScaledDotProductAttention", GRADED, role=OPERATOR, consumes="sdpa",
              state="y_cum"),
        _node("SNNElementWiseProduct", GRADED, role=OPERATOR, consumes="ewise", state="y_cum"),
        _node("SNNMatrixOperator", GRADED, role=OPERATOR, consumes="matmul", state="y_cum"),
        _node("TDModule", GRADED, role=OPERATOR, state="y_cum"),  # GELU/SiLU/Softmax/norms
    ),
)
