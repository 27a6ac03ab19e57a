"""Our tracer and meter: one instrumentation scope (name, version, schema URL)
for every span and metric of the plugin. A provider that fails to hand one
out costs that signal, with one warning, never the user's program."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import metrics, trace

from ..version import __version__
from .attributes import SCHEMA_URL, SCOPE

_LOG = logging.getLogger(__name__)


def _scoped(factory: Any, provider: Any, fallback: Any, what: str) -> Any:
    try:
        return factory(SCOPE, __version__, provider, schema_url=SCHEMA_URL)
    except Exception as exc:
        _LOG.warning("spikeformer: %s provider unusable (%s: %s); no %s from this plugin",
                     what, type(exc).__name__, exc, "spans" if what == "tracer" else "metrics")
        return fallback()


def get_tracer(tracer_provider: Any = None) -> Any:
    return _scoped(trace.get_tracer, tracer_provider, trace.NoOpTracer, "tracer")


def get_meter(meter_provider: Any = None) -> Any:
    return _scoped(metrics.get_meter, meter_provider, lambda: metrics.NoOpMeter(SCOPE), "meter")
