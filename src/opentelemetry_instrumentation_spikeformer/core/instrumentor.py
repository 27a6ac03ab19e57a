"""``SpikeformerInstrumentor``: spans and metrics of conversions, compilations
and NIR exports, and the spike monitor on converted models. Only patches: the
device adapters and health server are ``SpikeformerDevicesInstrumentor``,
structured logging is ``setup_logging()``.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

from opentelemetry import metrics
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from ..package import _instruments
from .attributes import SCOPE
from .errors import log_internal_error
from .patching import PatchSession
from .scope import get_meter, get_tracer
from .settings import NAMES, load_settings
from .targets import parse_extra_targets
from .telemetry import Telemetry

_LOG = logging.getLogger(__name__)


class SpikeformerInstrumentor(BaseInstrumentor):
    """Instrumentor for SNN conversion / compilation libraries.

    Keyword arguments: ``tracer_provider``, ``meter_provider``, and any setting
    of ``Settings`` by name (e.g. ``layer_spans=False``), which wins over its
    ``OTEL_PYTHON_SPIKEFORMER_*`` variable. ``packages`` limits the framework
    extensions to those packages (tests, embedding).
    """

    _session: PatchSession | None = None
    _stop_monitor: Any = None
    _stop_sigterm: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        settings = load_settings({k: v for k, v in kwargs.items() if k in NAMES})
        meter_provider = kwargs.get("meter_provider")
        tracer = get_tracer(kwargs.get("tracer_provider"))
        global_providers = meter_provider is None and kwargs.get("tracer_provider") is None
        try:
            telemetry = Telemetry(tracer, get_meter(meter_provider), settings, global_providers)
        except Exception as exc:  # a meter whose instruments fail: spans still work
            _LOG.warning("spikeformer: meter unusable (%s: %s); metrics disabled",
                         type(exc).__name__, exc)
            telemetry = Telemetry(tracer, metrics.NoOpMeter(SCOPE), settings)
        self._session = PatchSession(telemetry, parse_extra_targets(settings.extra_targets),
                                     kwargs.get("packages"))
        self._session.start()
        if settings.spike_monitor:
            from ..monitor.auto_attach import start

            try:
                self._stop_monitor = start(telemetry, meter_provider)
            except Exception as exc:
                _LOG.warning("spikeformer: spike monitor unavailable (%s: %s)",
                             type(exc).__name__, exc)
        self._start_multiprocess(settings, kwargs)

    def _start_multiprocess(self, settings: Any, kwargs: dict[str, Any]) -> None:
        """Hints about ranks and exporters; the SIGTERM flush if asked for."""
        from ..distributed import advice, sigterm

        providers = kwargs.get("tracer_provider"), kwargs.get("meter_provider")
        try:
            advice.check(*providers)
            if settings.flush_on_sigterm:
                self._stop_sigterm = sigterm.install(*providers)
        except Exception:
            log_internal_error("multi-process start-up")

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._stop_sigterm is not None:
            self._stop_sigterm()
            self._stop_sigterm = None
        if self._stop_monitor is not None:
            self._stop_monitor()
            self._stop_monitor = None
        if self._session is not None:
            self._session.stop()
            self._session.telemetry.close()
            self._session = None

    @property
    def telemetry(self) -> Telemetry | None:
        """The active session's telemetry (for extensions and tests)."""
        return self._session.telemetry if self._session is not None else None
