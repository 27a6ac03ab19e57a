"""BrainChip Akida: ``model.map(device)`` onto a (virtual) Akida device.

    spikeformer.compile akida      the outermost map(device)
      spikeformer.stage map        with one event per attempt of the C++ mapper

``Model.map`` is pure Python, assigned onto the pybind11 class at the end of
``akida/__init__.py``: the row hooks on module ``akida`` (a hook on
``akida.core`` would be overwritten). ``Model._map`` is the C++ mapper that
``map`` calls once, or several times while it searches the filter split; the
failed attempts it catches are events, not errors. Unwrapping puts the class
entries themselves back (``opentelemetry.instrumentation.utils.unwrap`` would
leave an unbound builtin ``_map``). ``map(None)`` un-maps: not measured.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from ..core import attributes as a
from ..core.errors import quietly
from ..core.targets import STAGE, RowHooks, Target
from ..core.wrappers import bypass
from . import mapping
from .base import Framework

NAME = HARDWARE = "akida"
HRC = "HRC"  # the input-convolution block: not a neural processor
ATTEMPT_EVENT = "akida.map_attempt"
WHERE = "akida map attempt"

_open_maps: set[int] = set()  # span ids of map steps in flight
_lock = threading.Lock()


def resources(model: Any) -> tuple[mapping.Resources, dict[str, Any]]:
    """Neural processors (Akida's cores) and program bytes of the mapped model."""
    components = {kind.name: int(n) for kind, n in model.component_count.items()}
    nps_used = sum(n for kind, n in components.items() if kind != HRC)
    nps_available = len(model.device.mesh.nps)
    programs = [seq.program for seq in model.sequences if seq.program is not None]
    size = sum(len(program) for program in programs)
    result = mapping.Resources(
        HARDWARE, cores=(nps_used, nps_available), program_size=size,
        utilization={"0": nps_used / nps_available} if nps_available else {})
    details: dict[str, Any] = {
        "nps_used": nps_used, "nps_available": nps_available, "program_size": size,
        "sequences": len(model.sequences), "hardware_sequences": len(programs),
        "passes": sum(len(seq.passes) for seq in model.sequences),
        "device": str(getattr(model.device, "desc", "")).rsplit("/", 1)[-1],
    }
    details.update({f"components.{kind}": n for kind, n in components.items()})
    return result, details


class _MapHooks(RowHooks):
    def applies(self, bound: Any) -> bool:
        return bound.get("device") is not None

    def on_start(self, call: Any, bound: Any) -> None:
        if call.target.role == STAGE:
            with _lock:
                _open_maps.add(call.span.get_span_context().span_id)
        if call.span.is_recording():
            mode = bound.get("mode")
            call.span.set_attribute("akida.map.mode", getattr(mode, "name", str(mode)))
            call.span.set_attribute("akida.map.hw_only", bool(bound.get("hw_only")))

    def on_end(self, call: Any, result: Any, error: BaseException | None) -> None:
        if call.target.role == STAGE:
            with _lock:
                _open_maps.discard(call.span.get_span_context().span_id)
        if error is not None or call.instance is None:
            return
        found, details = resources(call.instance)
        if call.span.is_recording():
            call.span.set_attributes({f"akida.{k}": v for k, v in details.items()})
        if call.target.role == STAGE:  # the outer compile span gets the details only
            mapping.publish(call.telemetry, found)


def _map_attempt(session: Any):
    """An event on the map step for each call of the C++ mapper."""
    def wrapper(wrapped, instance, args, kwargs):
        span = trace.get_current_span()
        if bypass(session) or span.get_span_context().span_id not in _open_maps:
            return wrapped(*args, **kwargs)
        attrs = quietly(WHERE, _attempt_attributes, kwargs) or {}
        try:
            result = wrapped(*args, **kwargs)
        except Exception as exc:  # map() may catch it and try another split
            quietly(WHERE, span.add_event, ATTEMPT_EVENT, {
                **attrs, "akida.outcome": "failed", ERROR_TYPE: type(exc).__qualname__})
            raise
        quietly(WHERE, span.add_event, ATTEMPT_EVENT, {**attrs, "akida.outcome": "mapped"})
        return result

    return wrapper


def _attempt_attributes(kwargs: Any) -> dict[str, Any]:
    filters = getattr(kwargs.get("constraints"), "cnp_max_filters", None)
    return {"akida.cnp_max_filters": filters} if isinstance(filters, int) else {}


FRAMEWORK = Framework(
    name=NAME,
    packages=("akida",),
    tested_with="akida 2.19.3 (virtual AKD1000 / AKD1500)",
    targets=(
        Target("akida", "Model.map", framework=NAME, role=STAGE, step="map",
               standalone=a.COMPILATION, model="self", hardware_value=HARDWARE,
               hooks=_MapHooks()),
        Target("akida", "Model._map", framework=NAME, role=STAGE, wrapper=_map_attempt),
    ),
    hardware=(HARDWARE, "akd1000", "akd1500"),
    metrics=(mapping.CORES, mapping.CORE_UTILIZATION, mapping.PROGRAM_SIZE),
)
