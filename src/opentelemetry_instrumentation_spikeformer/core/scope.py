"""Our tracer and meter: one instrumentation scope (name, version, schema URL)
for every span and metric of the plugin. A provider that fails to hand one
out costs that signal, with one warning, never the user's program.

Also: telling the user, once, that no OpenTelemetry SDK is configured, so that
what they asked to be measured goes nowhere (``warn_if_no_sdk``).
"""

from __future__ import annotations

import logging
import warnings
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


class TelemetryNotConfiguredWarning(RuntimeWarning):
    """Instrumented, but the global providers are the API's no-ops."""


NO_SDK_MESSAGE = (
    "spikeformer: no OpenTelemetry SDK is configured, so the spans and metrics of "
    "instrumented conversions go nowhere. Install a configurator "
    "(pip install 'opentelemetry-instrumentation-spikeformer[sdk]' brings "
    "opentelemetry-distro) and run under opentelemetry-instrument, or set the SDK's "
    "providers before converting / pass tracer_provider= and meter_provider= to "
    "SpikeformerInstrumentor().instrument()."
)
_warned_no_sdk = False


def is_noop_provider(provider: Any) -> bool:
    """The API's default provider (a proxy with no SDK behind it) or a no-op one."""
    name = type(provider).__name__
    return name.startswith(("Proxy", "NoOp", "_Proxy", "_NoOp"))


def warn_if_no_sdk() -> None:
    """Once per process: a visible ``warnings.warn`` when neither a tracer nor a
    meter provider has been set. A warning, not a log record: the user asked
    for telemetry and can fix this, and our loggers print nothing unless the
    application configured logging (standard filters and ``-W`` apply)."""
    global _warned_no_sdk
    if _warned_no_sdk:
        return
    _warned_no_sdk = True
    if is_noop_provider(trace.get_tracer_provider()) and \
            is_noop_provider(metrics.get_meter_provider()):
        warnings.warn(NO_SDK_MESSAGE, TelemetryNotConfiguredWarning, stacklevel=2)
