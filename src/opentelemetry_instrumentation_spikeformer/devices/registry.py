"""Which adapters exist (built-ins plus the ``spikeformer_device_adapters``
entry-point group) and which are enabled for a given set of settings.

An adapter is *required* when it is named in
``OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS``; ``spinnaker`` also when a board
address is set. A required adapter that finds nothing is reported down; the
others are simply left out.
"""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from .base import DeviceAdapter

_LOG = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "spikeformer_device_adapters"
DISABLED = "none"  # OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS=none: no adapter at all

# name -> "module:Class", relative to this package; imported when used.
BUILTIN: dict[str, str] = {
    "host": ".host:HostAdapter",
    "nvml": ".nvml:NvmlAdapter",
    "rapl": ".rapl:RaplAdapter",
    "spinnaker": ".spinnaker:SpinnakerAdapter",
    "synsense": ".synsense:SynsenseAdapter",
    "loihi": ".loihi:LoihiAdapter",
}


@dataclass
class Enabled:
    """An adapter to poll, and whether its absence makes the process unhealthy."""

    adapter: DeviceAdapter
    required: bool


def _builtin(ref: str) -> Callable[..., DeviceAdapter]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module, __package__), attr)


@functools.lru_cache(maxsize=1)
def factories() -> dict[str, Callable[..., DeviceAdapter]]:
    """Adapter factories by name, loaded once; an entry point that fails to load is
    one warning and the others go on."""
    found: dict[str, Callable[..., DeviceAdapter]] = {
        name: _builtin(ref) for name, ref in BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            _LOG.warning("device adapter entry point %r (%s) shadows a built-in; ignored",
                         ep.name, ep.value)
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:
            _LOG.warning("device adapter %r (%s) failed to load: %s: %s",
                         ep.name, ep.value, type(exc).__name__, exc)
    return found


def enabled_adapters(settings: Any) -> list[Enabled]:
    """Instantiate the adapters the settings ask for (by default all; the poller
    leaves out those that are not required and find nothing)."""
    requested = tuple(dict.fromkeys(settings.device_adapters))
    if requested == (DISABLED,):
        return []
    available = dict(factories())
    for name in requested:
        if name not in available:
            _LOG.warning("OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS: unknown adapter %r "
                         "(known: %s)", name, ", ".join(sorted(available)))
    names = [n for n in requested if n in available] if requested else list(available)
    enabled = []
    for name in names:
        try:
            adapter = available[name](settings)
        except Exception as exc:
            _LOG.warning("device adapter %r failed to start: %s: %s",
                         name, type(exc).__name__, exc)
            continue
        adapter.name = name
        required = name in requested or (name == "spinnaker" and bool(settings.spinnaker_host))
        enabled.append(Enabled(adapter, required))
    return enabled
