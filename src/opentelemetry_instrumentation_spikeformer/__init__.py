"""OpenTelemetry instrumentation for SNN conversion and neuromorphic compilation.

Usage::

    opentelemetry-instrument python your_script.py

or in code::

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
    SpikeformerInstrumentor().instrument(tracer_provider=..., meter_provider=...)

Patches sinabs, spikingjelly, snntorch, nirtorch and the Spikeformer kits when
(and if) they are imported; importing this package imports none of them.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from . import semconv
from .config import OPTIONS, load_settings
from .features import FeatureContext, start_features, stop_features
from .package import _instruments
from .patching import PatchSession
from .targets import BUILTIN_TARGETS, Target, parse_extra_targets
from .telemetry import Telemetry
from .version import __version__

__all__ = ["SpikeformerInstrumentor", "__version__"]

_LOG = logging.getLogger(__name__)
_OPTION_NAMES = frozenset(opt.name for opt in OPTIONS)


class SpikeformerInstrumentor(BaseInstrumentor):
    """Instrumentor for SNN conversion / compilation libraries.

    Keyword arguments: ``tracer_provider``, ``meter_provider``, and any setting
    of ``config.OPTIONS`` by name (e.g. ``layer_spans=False``), which wins over
    its ``OTEL_PYTHON_SPIKEFORMER_*`` variable. ``targets`` replaces the
    built-in table (tests, embedding).
    """

    _session: PatchSession | None = None
    _stops: list = []

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        settings = load_settings({k: v for k, v in kwargs.items() if k in _OPTION_NAMES})
        tracer = trace.get_tracer(semconv.SCOPE, __version__, tracer_provider)
        try:
            telemetry = Telemetry(tracer, metrics.get_meter(semconv.SCOPE, __version__, meter_provider),
                                  settings)
        except Exception as exc:  # a broken meter must not stop tracing or the app
            _LOG.warning("spikeformer: meter unusable (%s); metrics disabled", exc)
            telemetry = Telemetry(tracer, metrics.NoOpMeter(semconv.SCOPE), settings)
        rows: list[Target] = []
        for row in kwargs.get("targets", BUILTIN_TARGETS):
            rows.extend(row.expanded())
        rows.extend(parse_extra_targets(settings.extra_targets))
        self._session = PatchSession(telemetry, rows)
        self._session.start()
        self._stops = start_features(
            FeatureContext(settings, telemetry, tracer_provider, meter_provider))

    def _uninstrument(self, **kwargs: Any) -> None:
        stop_features(self._stops)
        self._stops = []
        if self._session is not None:
            self._session.stop()
            self._session = None

    @property
    def telemetry(self) -> Telemetry | None:
        """The active session's telemetry (for features and tests)."""
        return self._session.telemetry if self._session is not None else None
