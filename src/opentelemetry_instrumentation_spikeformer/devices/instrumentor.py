"""``SpikeformerDevicesInstrumentor``: device adapters feeding the ``hw.*``
gauges, and the ``/health`` server. Its own entry point (``spikeformer_devices``),
so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=spikeformer_devices`` turns it off.

Polling starts at once when adapters are named in
``OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS`` (or the health server is on);
otherwise at the first import of an SNN library or of an adapter's hardware
package, so a program that uses neither gets no thread. ``none``: nothing.

Multi-process jobs: a helper process (spawn worker, resource tracker, the
torchrun agent; ``core.process``) polls nothing and serves nothing; a fork
child reports nothing its parent's poller read. In a torchrun rank, adapters
that read the machine (``per_host``) are polled by ``LOCAL_RANK`` 0 only, and
the health server listens on ``health_port + LOCAL_RANK``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from .. import frameworks
from ..core import forksafe
from ..core.imports import listen, unlisten
from ..core.process import helper_kind, local_rank
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
        helper = helper_kind()
        if helper is not None:
            _LOG.debug("spikeformer devices: no polling, no health server in %s", helper)
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
            adapters = _this_rank(enabled_adapters(settings))
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
        port, offset = settings.health_port, local_rank()
        if port and offset:  # one port per rank of a node
            port += offset
            if port > 65535:
                _LOG.warning("spikeformer health server: OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT %s "
                             "+ LOCAL_RANK %s is beyond 65535; not started",
                             settings.health_port, offset)
                return
        checker = HealthChecker(settings, poller=lambda: self._poller,
                                tracer_provider=self._kwargs.get("tracer_provider"),
                                meter_provider=self._kwargs.get("meter_provider"))
        try:
            self._server = HealthServer(checker, settings.health_host, port)
        except OSError as exc:
            _LOG.warning("spikeformer health server cannot listen on %s:%s (%s); not started",
                         settings.health_host, port, exc.strerror or exc)
            return
        _LOG.info("spikeformer health server on %s/health", self._server.url)

    def _forget_inherited(self) -> None:
        """In a fork child: the poller's and server's threads stayed in the
        parent; report none of the parent's readings, start nothing."""
        self._enabled = False
        self._poller = self._server = None


def _this_rank(adapters: list) -> list:
    """Adapters this process polls: in a torchrun rank other than LOCAL_RANK 0,
    none of those that read the machine (``per_host``)."""
    rank = local_rank()
    if not rank:
        return adapters
    kept = [e for e in adapters if not getattr(e.adapter, "per_host", True)]
    if len(kept) < len(adapters):
        _LOG.info("spikeformer devices: LOCAL_RANK %d leaves %s to LOCAL_RANK 0", rank,
                  ", ".join(e.adapter.name for e in adapters if e not in kept))
    return kept


def _after_fork_in_child() -> None:
    instance = SpikeformerDevicesInstrumentor.__dict__.get("_instance")
    if instance is not None:
        instance._forget_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)
