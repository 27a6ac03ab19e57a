"""Attach the monitor to every model an instrumented conversion returns.

Enabled by ``OTEL_PYTHON_SPIKEFORMER_SPIKE_MONITOR`` (default on). Each
successful conversion that returns a model with spiking layers gets a monitor
named ``OTEL_PYTHON_SPIKEFORMER_MODEL_NAME`` or after the source model's class,
with an ordinal for a second live model of that name (``monitor.naming``);
stopping retires them all: they stop counting, and what they counted stays
reported while their model lives (``SpikeMonitor.retire``). In a torchrun job
only the ranks in ``OTEL_PYTHON_SPIKEFORMER_MONITOR_RANKS`` attach one (default: all).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from ..core import attributes as a
from ..core import model_info
from ..core.process import rank_info
from ..core.settings import ALL_RANKS
from . import energy
from .spike_monitor import attach, monitors_of


def start(telemetry: Any, meter_provider: Any) -> Callable[[], None]:
    settings = telemetry.settings
    # Read (and judge) the energy table now, once: not on the user's first conversion.
    energy.tables(settings.energy_table)
    attached: "weakref.WeakSet[Any]" = weakref.WeakSet()
    if not rank_selected(settings.monitor_ranks):
        return lambda: None

    def on_converted(result: Any, _target: Any, call: Any) -> None:
        model = model_info.unwrap_model(result)
        if not model_info.is_model(model) or not model_info.spiking_layer_count(model):
            return
        if monitors_of(model):
            return
        base = settings.model_name or getattr(call, "model_class", None) \
            or model_info.model_type(model)
        attrs = getattr(call, "metric_attrs", None) or {}
        hardware = attrs.get(a.M_HARDWARE_TARGET)
        if hardware in (a.UNSPECIFIED, a.OTHER):
            hardware = None  # the energy_hardware setting
        monitor = attach(model, base, settings, hardware, meter_provider, automatic=True)
        attached.add(monitor)

    telemetry.on_converted.append(on_converted)

    def stop() -> None:
        try:
            telemetry.on_converted.remove(on_converted)
        except ValueError:
            pass
        for monitor in list(attached):
            monitor.retire()  # counts so far stay reported: shutdown() after this exports them

    return stop


def rank_selected(ranks: tuple[str, ...]) -> bool:
    """Whether this process monitors: every process outside a torchrun job,
    and the ranks ``monitor_ranks`` lists."""
    info = rank_info()
    return ALL_RANKS in ranks or info is None or str(info.rank) in ranks
