"""Host memory and this process' memory and CPU (psutil).

Feeds ``system.memory.utilization`` (the HighMemoryUsage alert),
``process.memory.usage`` and ``process.cpu.utilization``; the host counts as
degraded above ``MEMORY_DEGRADED`` memory use.
"""

from __future__ import annotations

import os
import platform

from . import metrics as specs
from .base import DEGRADED, OK, Device, DeviceAdapter, Snapshot, missing_module

MEMORY_DEGRADED = 0.9  # the HighMemoryUsage alert's "memory usage > 90%"


class HostAdapter(DeviceAdapter):
    name = "host"
    hw_type = "host"
    kinds = ("host",)

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self._psutil = None
        self._process = None

    def unavailable_reason(self) -> str | None:
        if missing_module("psutil"):
            return "psutil not installed (install the extra [devices])"
        return None

    def discover(self):
        self.require_available()
        import psutil

        self._psutil = psutil
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # the first call only starts the interval
        return [Device("host", self.hw_type, platform.node() or "host", "host")]

    def read(self, device: Device) -> Snapshot:
        memory = self._psutil.virtual_memory()
        used = (memory.total - memory.available) / memory.total  # psutil's percent, unrounded
        cpus = self._psutil.cpu_count() or 1
        extra = {
            specs.SYSTEM_MEMORY_UTILIZATION.name: used,
            specs.PROCESS_MEMORY_USAGE.name: self._process.memory_info().rss,
            specs.PROCESS_CPU_UTILIZATION.name: self._process.cpu_percent(None) / 100.0 / cpus,
            "system.memory.limit": memory.total,
            "system.cpu.count": cpus,
        }
        if used > MEMORY_DEGRADED:
            return Snapshot(device, DEGRADED, extra=extra,
                            error=f"memory {used:.0%} > {MEMORY_DEGRADED:.0%}")
        return Snapshot(device, OK, extra=extra)
