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


def get_tracer(tracer_provider: Any = None) -> Any:
    try:
        return trace.get_tracer(SCOPE, __version__, tracer_provider, schema_url=SCHEMA_URL)
    except Exception as exc:
        _LOG.warning("spikeformer: tracer provider unusable (%s: %s); spans disabled",
                     type(exc).__name__, exc)
        return trace.NoOpTracer()


def get_meter(meter_provider: Any = None) -> Any:
    try:
        return metrics.get_meter(SCOPE, __version__, meter_provider, schema_url=SCHEMA_URL)
    except Exception as exc:
        _LOG.warning("spikeformer: meter provider unusable (%s: %s); metrics disabled",
                     type(exc).__name__, exc)
        return metrics.NoOpMeter(SCOPE)
