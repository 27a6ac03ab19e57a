"""CPU package energy from Intel RAPL via the Linux powercap tree.

``energy_uj`` is a wrapping counter: each step adds ``(now - last) mod
max_energy_range_uj``, so ``hw.energy`` stays monotonic across wraps; power is
the energy step over the time step. Since Linux 5.10 ``energy_uj`` is
readable by root only: then the adapter reports itself unavailable and why.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from .base import OK, Device, DeviceAdapter, Snapshot, Unavailable

DEFAULT_ROOT = "/sys/class/powercap"
_ZONE = re.compile(r"^intel-rapl:\d+$")  # top-level zones: package-N, psys


class _Counter:
    """Unwraps one zone's ``energy_uj``; power from consecutive readings."""

    def __init__(self, max_range_uj: int) -> None:
        self.max_range_uj = max_range_uj
        self.total_uj: int | None = None
        self.last_raw = 0
        self.last_time = 0.0

    def update(self, raw: int, now: float) -> float | None:
        """Add a raw reading; return the power in W since the previous one."""
        if self.total_uj is None:
            self.total_uj, self.last_raw, self.last_time = raw, raw, now
            return None
        step = raw - self.last_raw
        if step < 0:  # wrapped
            step += self.max_range_uj
        elapsed = now - self.last_time
        self.total_uj += step
        self.last_raw, self.last_time = raw, now
        return step / 1e6 / elapsed if elapsed > 0 else None


class RaplAdapter(DeviceAdapter):
    name = "rapl"
    hw_type = "cpu"
    kinds = ("cpu",)

    def __init__(self, settings=None, root: str | Path | None = None) -> None:
        super().__init__(settings)
        self.root = Path(root or getattr(settings, "rapl_root", None) or DEFAULT_ROOT)
        self._zones: dict[str, Path] = {}
        self._counters: dict[str, _Counter] = {}

    def unavailable_reason(self) -> str | None:
        if not self.root.is_dir():
            return f"{self.root} not present (no RAPL powercap on this machine)"
        return None

    def discover(self):
        self.require_available()
        devices = []
        for zone in sorted(p for p in self.root.iterdir() if _ZONE.match(p.name)):
            try:
                name = (zone / "name").read_text().strip() or zone.name
                int((zone / "energy_uj").read_text())
                max_range = int((zone / "max_energy_range_uj").read_text())
            except PermissionError as exc:
                raise Unavailable(
                    f"{exc.filename} not readable (root only since Linux 5.10)") from None
            except (OSError, ValueError):
                continue  # a zone without counters (disabled, odd firmware)
            self._zones[name] = zone
            self._counters[name] = _Counter(max_range)
            devices.append(Device(name, self.hw_type, name, "cpu"))
        return devices

    def read(self, device: Device) -> Snapshot:
        raw = int((self._zones[device.id] / "energy_uj").read_text())
        counter = self._counters[device.id]
        power = counter.update(raw, time.monotonic())
        return Snapshot(device, OK, power_w=power, energy_j=counter.total_uj / 1e6)
