"""Target rows: one row per callable we wrap (frameworks/ declare them).

A row names a module, a qualified name in it and what the call is
(operation, framework), plus *sources*: small expressions saying where to read
the model, hardware target and timesteps from the call. A source is one or
more alternatives separated by `` or ``; each is ``param`` (a parameter of the
wrapped function, defaults included), ``#N`` (N-th positional argument),
``self`` / ``self.attr.path``, or ``param.attr``, optionally followed by
``|type`` (class name) or ``|samples`` (dataset / batch length).

Rows are verified against the installed libraries by the tests
(tests/test_targets.py resolves every built-in row that can be imported).
A row may carry ``hooks`` (``RowHooks``): framework code that reads more from
the call (botocore's extension hooks), and ``wrapper``: a wrapper factory
replacing the standard one, for calls that are steps of something else.
A child row (``STAGE``) names its span with ``step``; with ``standalone`` set
to an operation, a call made outside any operation opens that operation's span
around its step span (a toolchain step a user may also call alone, such as a
core allocator or Akida's ``map``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from ..environment_variables import OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS
from .attributes import EXPORT, OPERATIONS, SPAN_VERB

_LOG = logging.getLogger(__name__)
_PACKAGE = __name__.partition(".")[0]

# Roles: "op" rows are the measured operations (spans + metrics); the others
# are child spans inside an op.
OP, STAGE, LAYER, CALIBRATION = "op", "stage", "layer", "calibration"


@dataclass(frozen=True)
class Target:
    module: str
    qualname: str
    operation: str = ""  # OPERATIONS, for role "op"
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
    # a child-role row that still gets its (root) span when called outside any
    # operation (a step the user calls before the conversion: calibrate_qwen2_snn)
    root_span: bool = False
    extra: bool = False  # came from OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS
    hooks: "RowHooks | None" = None
    # (session) -> wrapt wrapper, instead of the standard span-and-metrics one
    wrapper: Callable[[Any], Callable] | None = None
    step: str = ""  # child-span name (default: the callable's name)
    standalone: str = ""  # OPERATIONS: opened around a child row called outside any operation

    @property
    def function_name(self) -> str:
        return f"{self.module}.{self.qualname}"

    @property
    def span_name(self) -> str:
        if self.role == OP:
            return f"spikeformer.{SPAN_VERB[self.operation]} {self.framework}"
        if self.role == CALIBRATION:
            return "spikeformer.calibrate"
        if self.role == LAYER:
            return "spikeformer.convert_layer"
        return f"spikeformer.stage {self.step or self.qualname.rsplit('.', 1)[-1]}"

    def standalone_row(self) -> "Target | None":
        """The operation row opened around this child row when it is called alone."""
        if not self.standalone or self.role == OP:
            return None
        return replace(self, role=OP, operation=self.standalone, standalone="", aliases=())

    def expanded(self) -> list["Target"]:
        """This row plus one row per re-exporting module."""
        return [self] + [replace(self, module=alias, aliases=()) for alias in self.aliases]


class RowHooks:
    """Framework code around one call of a row; each method runs inside the
    core's error isolation, so an exception here never reaches the user."""

    def applies(self, bound: Mapping[str, Any]) -> bool:
        """False: this call is not measured at all (``model.map(None)`` un-maps)."""
        return True

    def on_start(self, call: Any, bound: Mapping[str, Any]) -> None:
        """After the span started: ``bound`` holds the call's arguments by name."""

    def on_end(self, call: Any, result: Any, error: BaseException | None) -> None:
        """Before the span ends: read the result, set attributes, record metrics."""


def nir_row(module: str, qualname: str, framework: str, model: str, direction: str,
            aliases: tuple[str, ...] = ()) -> Target:
    """A NIR export (``to_nir``) or import (``from_nir``) row."""
    return Target(module, qualname, EXPORT, framework, model=model, hardware_value="nir",
                  direction=direction, aliases=aliases)


# --------------------------------------------------------------------------
# Extra rows from the environment
# --------------------------------------------------------------------------
_EXTRA_RE = re.compile(
    r"^(?P<module>[A-Za-z_][\w.]*):(?P<qualname>[A-Za-z_][\w.]*)=(?P<op>\w+)$"
)


# Wrapping these would wrap our own code or every program's (builtins:len).
_REFUSED_PACKAGES = frozenset({"builtins", _PACKAGE, "opentelemetry", "wrapt"})


def parse_extra_targets(text: str, source: str = OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS
                        ) -> list[Target]:
    """``"pkg.mod:Class.method=conversion,..."``; a bad entry is one warning, the rest apply."""
    rows = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        match = _EXTRA_RE.match(entry)
        if match is None or match["op"] not in OPERATIONS:
            _LOG.warning(
                "%s: ignoring %r (expected module:qualname=operation, operation one of %s)",
                source, entry, "|".join(OPERATIONS),
            )
            continue
        if match["module"].partition(".")[0] in _REFUSED_PACKAGES:
            _LOG.warning("%s: ignoring %r (the package %s cannot be instrumented)",
                         source, entry, match["module"].partition(".")[0])
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
