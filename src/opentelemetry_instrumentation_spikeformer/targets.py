"""The table of patch targets: one row per callable we wrap.

A row names a module, a qualified name in it and what the call is
(operation, framework), plus *sources*: small expressions saying where to read
the model, hardware target and timesteps from the call. A source is one or
more alternatives separated by `` or ``; each is ``param`` (a parameter of the
wrapped function, defaults included), ``#N`` (N-th positional argument),
``self`` / ``self.attr.path``, or ``param.attr``, optionally followed by
``|type`` (class name) or ``|samples`` (dataset / batch length).

Rows are verified against the installed libraries by the tests
(tests/test_targets.py resolves every built-in row that can be imported).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from . import semconv

_LOG = logging.getLogger(__name__)

# Roles: "op" rows are the measured operations (spans + metrics); the others
# are child spans inside an op.
OP, STAGE, LAYER, CALIBRATION = "op", "stage", "layer", "calibration"


@dataclass(frozen=True)
class Target:
    module: str
    qualname: str
    operation: str = ""  # semconv.OPERATIONS, for role "op"
    framework: str = ""
    role: str = OP
    model: str = ""
    hardware: str = ""
    hardware_value: str = ""  # fixed target when the call implies one
    timesteps: str = ""
    samples: str = ""
    layer: str = ""
    recipe: str = ""
    direction: str = ""  # to_nir | from_nir
    aliases: tuple[str, ...] = ()  # modules that re-export the same function
    subclasses: bool = False  # also wrap overrides in subclasses of the class
    extra: bool = False  # came from OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS

    @property
    def function_name(self) -> str:
        return f"{self.module}.{self.qualname}"

    @property
    def span_name(self) -> str:
        if self.role == OP:
            return f"spikeformer.{semconv.SPAN_VERB[self.operation]} {self.framework}"
        if self.role == CALIBRATION:
            return "spikeformer.calibrate"
        if self.role == LAYER:
            return "spikeformer.convert_layer"
        return f"spikeformer.stage {self.qualname.rsplit('.', 1)[-1]}"

    def expanded(self) -> list["Target"]:
        """This row plus one row per re-exporting module."""
        return [self] + [replace(self, module=alias, aliases=()) for alias in self.aliases]


_SJ = "spikingjelly.activation_based"
_SJ_STAGES = ("validate", "before_trace", "after_trace", "insert_observers", "calibrate",
              "replace", "finalize")


def _nir(module: str, qualname: str, framework: str, model: str, direction: str,
         aliases: tuple[str, ...] = ()) -> Target:
    return Target(module, qualname, semconv.EXPORT, framework, model=model,
                  hardware_value="nir", direction=direction, aliases=aliases)


BUILTIN_TARGETS: tuple[Target, ...] = (
    # --- sinabs ----------------------------------------------------------
    Target("sinabs.from_torch", "from_model", semconv.CONVERSION, "sinabs",
           model="model", timesteps="num_timesteps", aliases=("sinabs",)),
    # DYNAP-CNN / Speck: importing these needs the real samna (not on PyPI).
    Target("sinabs.backend.dynapcnn.dynapcnn_network", "DynapcnnNetwork.__init__",
           semconv.COMPILATION, "sinabs", model="snn", hardware_value="dynapcnn"),
    Target("sinabs.backend.dynapcnn.dynapcnn_network", "DynapcnnNetwork.make_config",
           semconv.COMPILATION, "sinabs", model="self", hardware="device"),
    _nir("sinabs.nir", "to_nir", "sinabs", "module", "to_nir", ("sinabs",)),
    _nir("sinabs.nir", "from_nir", "sinabs", "node", "from_nir", ("sinabs",)),
    # --- spikingjelly ----------------------------------------------------
    Target(f"{_SJ}.ann2snn.converter", "FXConverter.convert", semconv.CONVERSION,
           "spikingjelly", model="ann", recipe="self.recipe|type"),
    Target(f"{_SJ}.ann2snn.converter", "ModuleConverter.convert", semconv.CONVERSION,
           "spikingjelly", model="ann", recipe="self.recipe|type"),
    *(
        Target(f"{_SJ}.ann2snn", f"FXConversionRecipe.{stage}", role=STAGE,
               framework="spikingjelly", subclasses=True)
        for stage in _SJ_STAGES if stage != "calibrate"
    ),
    Target(f"{_SJ}.ann2snn", "FXConversionRecipe.calibrate", role=CALIBRATION,
           framework="spikingjelly", subclasses=True, samples="self.dataloader|samples"),
    Target(f"{_SJ}.ann2snn.recipes.rate_coding", "RateCodingRecipe._replace_layerwise",
           role=LAYER, framework="spikingjelly", layer="activation_node.target"),
    Target(f"{_SJ}.ann2snn.recipes.rate_coding", "RateCodingRecipe._replace_channelwise",
           role=LAYER, framework="spikingjelly", layer="activation_node.target"),
    _nir(f"{_SJ}.nir_exchange.to_nir", "export_to_nir", "spikingjelly", "net", "to_nir",
         (f"{_SJ}.nir_exchange",)),
    _nir(f"{_SJ}.nir_exchange.from_nir", "import_from_nir", "spikingjelly", "#0", "from_nir",
         (f"{_SJ}.nir_exchange",)),
    # --- snntorch --------------------------------------------------------
    _nir("snntorch.export_nir", "export_to_nir", "snntorch", "module", "to_nir"),
    _nir("snntorch.import_nir", "import_from_nir", "snntorch", "graph", "from_nir"),
    # --- nirtorch --------------------------------------------------------
    _nir("nirtorch.torch_tracer", "torch_to_nir", "nirtorch", "module", "to_nir", ("nirtorch",)),
    _nir("nirtorch.to_nir", "extract_nir_graph", "nirtorch", "model", "to_nir", ("nirtorch",)),
    _nir("nirtorch.nir_interpreter", "nir_to_torch", "nirtorch", "nir_node", "from_nir",
         ("nirtorch",)),
    _nir("nirtorch.from_nir", "load", "nirtorch", "nir_graph", "from_nir", ("nirtorch",)),
    # --- the seed kits (switch on only when such a package is imported) ----
    Target("spikeformer", "SpikeformerConverter.convert", semconv.CONVERSION, "spikeformer",
           model="model or #0", timesteps="self.config.timesteps or self.timesteps",
           hardware="target or hardware_target or self.config.target_hardware"),
    Target("spikeformer.conversion", "ConversionPipeline.convert", semconv.CONVERSION,
           "spikeformer", model="model or #0",
           timesteps="self.config.timesteps or self.timesteps",
           hardware="target or hardware_target or self.target or self.config.target_hardware"),
    Target("spikeformer.conversion", "ThresholdCalibrator.calibrate_model", role=CALIBRATION,
           framework="spikeformer", samples="calibration_loader|samples or #1|samples"),
    Target("spikeformer.hardware", "NeuromorphicBackend.compile", semconv.COMPILATION,
           "spikeformer", model="model or #0", hardware="self.config.platform or self.platform",
           subclasses=True),
    Target("spikeformer.hardware", "NeuromorphicBackend.deploy", semconv.DEPLOYMENT,
           "spikeformer", model="#0", hardware="self.config.platform or self.platform",
           subclasses=True),
    Target("spike_transformer_compiler.compiler", "SpikeCompiler.compile", semconv.COMPILATION,
           "spike_transformer_compiler", model="model or #0", hardware="self.target",
           timesteps="time_steps or self.time_steps"),
)

# --------------------------------------------------------------------------
# Extra rows from the environment
# --------------------------------------------------------------------------
_EXTRA_RE = re.compile(
    r"^(?P<module>[A-Za-z_][\w.]*):(?P<qualname>[A-Za-z_][\w.]*)=(?P<op>\w+)$"
)


def parse_extra_targets(text: str, source: str = "OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS"
                        ) -> list[Target]:
    """``"pkg.mod:Class.method=conversion,..."``; a bad entry is one warning, the rest apply."""
    rows = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        match = _EXTRA_RE.match(entry)
        if match is None or match["op"] not in semconv.OPERATIONS:
            _LOG.warning(
                "%s: ignoring %r (expected module:qualname=operation, operation one of %s)",
                source, entry, "|".join(semconv.OPERATIONS),
            )
            continue
        rows.append(Target(match["module"], match["qualname"], match["op"],
                           framework=match["module"].split(".", 1)[0],
                           model="model or #0", hardware="target or hardware_target or device",
                           extra=True))
    return rows


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------
_MISSING = object()


def _samples(obj: Any) -> int | None:
    dataset = getattr(obj, "dataset", None)
    for candidate in (dataset, obj):
        if candidate is not None and hasattr(candidate, "__len__"):
            try:
                return len(candidate)
            except TypeError:
                continue
    return None


_FILTERS = {"type": lambda v: type(v).__name__, "samples": _samples}


@dataclass(frozen=True)
class Source:
    """A compiled source expression (see the module docstring)."""

    alternatives: tuple[tuple[str, tuple[str, ...], str], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> "Source":
        alts = []
        for alt in (a.strip() for a in text.split(" or ") if a.strip()):
            path, _, flt = alt.partition("|")
            head, *rest = path.split(".")
            alts.append((head, tuple(rest), flt))
        return cls(tuple(alts))

    def read(self, bound: Mapping[str, Any], args: tuple, instance: Any) -> Any:
        for head, rest, flt in self.alternatives:
            if head == "self":
                value = instance if instance is not None else _MISSING
            elif head.startswith("#"):
                index = int(head[1:])
                value = args[index] if index < len(args) else _MISSING
            else:
                value = bound.get(head, _MISSING)
            for attr in rest:
                if value is _MISSING or value is None:
                    break
                value = getattr(value, attr, _MISSING)
            if value is _MISSING or value is None:
                continue
            return _FILTERS[flt](value) if flt else value
        return None
