"""Device adapters feeding OTel hardware gauges (``hw.*``) and the health check.

Importing this package imports no hardware library; each adapter imports its
own (pynvml, psutil, spinnman, samna, lava) lazily on its polling thread.
"""

from .base import DEGRADED, FAILED, OK, Device, DeviceAdapter, Snapshot, Unavailable

__all__ = ["DEGRADED", "FAILED", "OK", "Device", "DeviceAdapter", "Snapshot", "Unavailable"]
