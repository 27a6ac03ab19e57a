"""The ``devices`` feature: poll the enabled adapters, register the hw.* instruments.

``start(ctx)`` returns a stop callable that stops the threads and makes every
callback yield nothing (observable callbacks cannot be unregistered).
"""

from __future__ import annotations

import threading

from opentelemetry import metrics

from .. import semconv
from ..version import __version__
from .instruments import register
from .poller import Poller
from .registry import enabled_adapters

_active: Poller | None = None  # the running poller, for the health check
_lock = threading.Lock()


def active_poller() -> Poller | None:
    return _active


def start(ctx):
    global _active
    settings = ctx.settings
    adapters = enabled_adapters(settings)
    if not adapters:
        return None  # DEVICE_ADAPTERS=none: no threads, no instruments
    poller = Poller(adapters, settings.device_poll_interval, settings.probe_timeout)
    state = {"enabled": True}
    meter = metrics.get_meter(semconv.SCOPE, __version__, ctx.meter_provider)
    register(meter, poller.views, lambda: state["enabled"])
    poller.start()
    with _lock:
        _active = poller

    def stop() -> None:
        global _active
        state["enabled"] = False
        poller.stop()
        with _lock:
            if _active is poller:
                _active = None

    return stop
