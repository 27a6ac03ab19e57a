"""Feature contract (``features.py``): attach the monitor to converted models.

Enabled by ``OTEL_PYTHON_SPIKEFORMER_SPIKE_MONITOR`` (default on). Each
successful instrumented conversion that returns a model with spiking layers
gets a monitor named after the source model's class (bounded); stopping the
feature detaches them all, so their observable callbacks report nothing.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

from .. import model_info, semconv
from .spike_monitor import attach, monitors_of


def start(ctx: Any) -> Callable[[], None]:
    settings = ctx.settings
    attached: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def on_converted(result: Any, _target: Any, call: Any) -> None:
        model = model_info.unwrap_model(result)
        if not model_info.is_model(model) or not model_info.spiking_layer_count(model):
            return
        if monitors_of(model):
            return
        attrs = getattr(call, "metric_attrs", None) or {}
        name = attrs.get(semconv.M_MODEL_TYPE)
        if not name or name == semconv.UNSPECIFIED:
            name = model_info.model_type(model)
        hardware = attrs.get(semconv.M_HARDWARE_TARGET)
        if hardware in (semconv.UNSPECIFIED, semconv.OTHER):
            hardware = None  # the energy_hardware setting
        attached.add(attach(model, name, settings, hardware, ctx.meter_provider))

    ctx.telemetry.on_converted.append(on_converted)

    def stop() -> None:
        try:
            ctx.telemetry.on_converted.remove(on_converted)
        except ValueError:
            pass
        for monitor in list(attached):
            monitor.detach()

    return stop
