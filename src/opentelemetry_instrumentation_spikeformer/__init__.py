"""OpenTelemetry instrumentation for SNN conversion and neuromorphic compilation.

Usage::

    opentelemetry-instrument python your_script.py

or in code::

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
    SpikeformerInstrumentor().instrument(tracer_provider=..., meter_provider=...)

Patches sinabs, spikingjelly, snntorch, nirtorch and the Spikeformer kits when
(and if) they are imported; importing this package imports none of them, nor
torch. The rest of the public API is imported on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .core.attributes import EVENTS_LOGGER
from .core.instrumentor import SpikeformerInstrumentor
from .version import __version__

# A library logs; the application decides what is shown (no last-resort stderr).
for _name in (__name__, EVENTS_LOGGER):
    logging.getLogger(_name).addHandler(logging.NullHandler())

# Public name -> "module:attribute", imported when first used.
_LAZY = {
    "SpikeformerDevicesInstrumentor": "devices.instrumentor:SpikeformerDevicesInstrumentor",
    "monitor_model": "monitor.spike_monitor:monitor_model",
    "SpikeMonitor": "monitor.spike_monitor:SpikeMonitor",
    "HealthChecker": "devices.health:HealthChecker",
    "setup_logging": "structured_logging:setup_logging",
    "teardown_logging": "structured_logging:teardown_logging",
    "NeuromorphicLogger": "structured_logging:NeuromorphicLogger",
    "run_benchmark": "tools.bench.runner:run_benchmark",
    "TelemetryNotConfiguredWarning": "core.scope:TelemetryNotConfiguredWarning",
}

__all__ = ["SpikeformerInstrumentor", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    ref = _LAZY.get(name)
    if ref is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = ref.partition(":")
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
