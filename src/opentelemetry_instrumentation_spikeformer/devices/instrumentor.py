"""``SpikeformerDevicesInstrumentor``: device adapters feeding the ``hw.*``
gauges, and the ``/health`` server. Its own entry point (``spikeformer_devices``),
so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=spikeformer_devices`` turns it off.

Polling starts at once when adapters are named in
``OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS`` (or the health server is on);
otherwise at the first import of an SNN library or of an adapter's hardware
package, so a program that uses neither gets no thread. ``none``: nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import frameworks
from ..core import forksafe
from ..core.imports import listen, unlisten
from ..core.scope import get_meter
from ..core.settings import NAMES, Settings, load_settings
from .instruments import register
from .poller import Poller
from .registry import DISABLED, enabled_adapters, factories

_LOG = logging.getLogger(__name__)


class SpikeformerDevicesInstrumentor(BaseInstrumentor):
    """Keyword arguments: ``meter_provider``, ``tracer_provider`` (health
    checks report on it) and any device or health setting by name."""

    _settings: Settings | None = None
    _poller: Poller | None = None
    _server: Any = None
    _enabled = False
    _kwargs: dict[str, Any] = {}
    _lock = forksafe.lock()

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    @property
    def poller(self) -> Poller | None:
        """The running poller (None before polling started)."""
        return self._poller

    def _instrument(self, **kwargs: Any) -> None:
        settings = load_settings({k: v for k, v in kwargs.items() if k in NAMES})
        self._settings, self._kwargs, self._enabled = settings, kwargs, True
        if settings.device_adapters == (DISABLED,) and not settings.health_server:
            return
        register(get_meter(kwargs.get("meter_provider")), self._views, lambda: self._enabled)
        if settings.device_adapters or settings.health_server:
            self._start_polling()
        else:
            for package in self._triggers():
                listen(package, self._triggered)
        if settings.health_server:
            self._start_server()

    def _uninstrument(self, **kwargs: Any) -> None:
        self._enabled = False
        unlisten(self._triggered)
        with self._lock:
            poller, self._poller = self._poller, None
            server, self._server = self._server, None
        if server is not None:
            server()
        if poller is not None:
            poller.stop()

    # -- start ------------------------------------------------------------
    @staticmethod
    def _triggers() -> tuple[str, ...]:
        adapter_packages = (p for f in factories().values() for p in getattr(f, "triggers", ()))
        return tuple(dict.fromkeys((*frameworks.packages(), *adapter_packages)))

    def _triggered(self, _module: Any) -> None:
        unlisten(self._triggered)
        self._start_polling()

    def _start_polling(self) -> None:
        with self._lock:
            if self._poller is not None or not self._enabled:
                return
            settings = self._settings
            if settings.device_adapters == (DISABLED,):
                return
            adapters = enabled_adapters(settings)
            if not adapters:
                return
            self._poller = Poller(adapters, settings.device_poll_interval,
                                  settings.probe_timeout).start()

    def _views(self) -> list:
        poller = self._poller
        return poller.views() if poller is not None else []

    def _start_server(self) -> None:
        from .health import HealthChecker
        from .health_server import HealthServer

        settings = self._settings
        checker = HealthChecker(settings, poller=lambda: self._poller,
                                tracer_provider=self._kwargs.get("tracer_provider"),
                                meter_provider=self._kwargs.get("meter_provider"))
        try:
            self._server = HealthServer(checker, settings.health_host, settings.health_port)
        except OSError as exc:
            _LOG.warning("spikeformer health server cannot listen on %s:%s (%s); not started",
                         settings.health_host, settings.health_port, exc.strerror or exc)
            return
        _LOG.info("spikeformer health server on %s/health", self._server.url)
