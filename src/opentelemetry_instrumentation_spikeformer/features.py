"""Optional features started and stopped with the instrumentor.

Each feature module exposes ``start(ctx: FeatureContext) -> stop_callable``;
a feature that fails to start is one warning and the rest go on.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

from .config import Settings
from .telemetry import Telemetry

_LOG = logging.getLogger(__name__)

# (module relative to this package, setting that enables it or None: the
# feature decides from its own settings).
FEATURES: tuple[tuple[str, str | None], ...] = (
    (".structured_logging", "log_format"),  # first: later features' logs use it
    (".monitor.feature", "spike_monitor"),
    (".devices.feature", None),
    (".health_server", "health_server"),
)


@dataclass
class FeatureContext:
    settings: Settings
    telemetry: Telemetry
    tracer_provider: Any
    meter_provider: Any


def start_features(ctx: FeatureContext) -> list[Callable[[], None]]:
    stops = []
    for module_name, setting in FEATURES:
        if setting is not None and not getattr(ctx.settings, setting):
            continue
        try:
            module = importlib.import_module(module_name, __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__package__):
                continue  # feature not part of this build
            _LOG.warning("spikeformer feature %s unavailable: %s", module_name, exc)
            continue
        try:
            stop = module.start(ctx)
        except Exception as exc:  # one line, start-up goes on
            _LOG.warning("spikeformer feature %s failed to start: %s", module_name, exc)
            continue
        if stop is not None:
            stops.append(stop)
    return stops


def stop_features(stops: list[Callable[[], None]]) -> None:
    for stop in reversed(stops):
        try:
            stop()
        except Exception as exc:
            _LOG.warning("spikeformer feature failed to stop cleanly: %s", exc)
