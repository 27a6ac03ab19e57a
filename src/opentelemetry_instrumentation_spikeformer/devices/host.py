"""Host memory and this process' memory and CPU (psutil), for health only.

The host counts as degraded above ``MEMORY_DEGRADED`` memory use, and the
readings fill ``/health/detailed``'s ``system`` block. They are not metrics of
ours: ``system.memory.utilization``, ``process.memory.usage`` and
``process.cpu.utilization`` belong to opentelemetry-instrumentation-system-metrics.
"""

from __future__ import annotations

import os
import platform

from .base import DEGRADED, OK, Device, DeviceAdapter, Snapshot, missing_module

MEMORY_DEGRADED = 0.9  # the HighMemoryUsage alert's "memory usage > 90%"
# Snapshot.extra keys (health only, never exported as metrics)
MEMORY_UTILIZATION = "memory_utilization"  # (total - available) / total, 0..1
MEMORY_LIMIT = "memory_limit_bytes"
PROCESS_RSS = "process_rss_bytes"
PROCESS_CPU = "process_cpu_utilization"  # 0..1 of all cores
CPU_COUNT = "cpu_count"


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
            MEMORY_UTILIZATION: used,
            MEMORY_LIMIT: memory.total,
            PROCESS_RSS: self._process.memory_info().rss,
            PROCESS_CPU: _fraction(self._process.cpu_percent(None) / 100.0 / cpus),
            CPU_COUNT: cpus,
        }
        if used > MEMORY_DEGRADED:
            return Snapshot(device, DEGRADED, extra=extra,
                            error=f"memory {used:.0%} > {MEMORY_DEGRADED:.0%}")
        return Snapshot(device, OK, extra=extra)


def _fraction(value: float) -> float:
    """A utilisation in [0, 1]: psutil divides by the wall time since its last
    call, so a read just after discovery (a few microseconds) can report 40x."""
    return min(1.0, max(0.0, value))
