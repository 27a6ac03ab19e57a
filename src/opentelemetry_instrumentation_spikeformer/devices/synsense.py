"""SynSense Speck / Xylo / DYNAP-CNN boards through samna: discovery by USB.

Never imports samna unless the real one is installed: the PyPI ``samna``
0.48.6 is a placeholder whose ``__init__`` runs pip; ``samna_probe`` tells
them apart without importing. Power readings need the board opened, and samna
boards are opened exclusively by the user's program, so this adapter only
reports which boards are attached (up) or gone (down).
"""

from __future__ import annotations

from ..core.hardware import hardware_label
from .samna_probe import samna_status
from .base import OK, Device, DeviceAdapter, Snapshot

_FAMILIES = ("speck", "xylo", "dynapcnn")


def _family(type_name: str) -> str:
    low = type_name.lower()
    return next((f for f in _FAMILIES if low.startswith(f)), "synsense")


class SynsenseAdapter(DeviceAdapter):
    name = "synsense"
    hw_type = "neuromorphic"
    kinds = _FAMILIES
    triggers = ("samna",)

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self._samna = None
        self._found: set[str] = set()

    def unavailable_reason(self) -> str | None:
        real, reason = samna_status()
        return None if real else reason

    def _attached(self) -> dict[str, tuple[str, str]]:
        """hw.id -> (type name, serial) of the boards samna sees now."""
        boards = {}
        for info in self._samna.device.get_all_devices():
            type_name = str(getattr(info, "device_type_name", "") or "unknown")
            serial = str(getattr(info, "serial_number", "") or len(boards))
            boards[f"{hardware_label(type_name)}-{serial}"] = (type_name, serial)
        return boards

    def discover(self):
        self.require_available()
        import samna  # the real one: checked above

        self._samna = samna
        devices = []
        for hw_id, (type_name, serial) in self._attached().items():
            devices.append(Device(hw_id, self.hw_type, type_name, _family(type_name)))
        return devices

    def read(self, device: Device) -> Snapshot:
        boards = self._attached()
        if device.id not in boards:
            raise ConnectionError(f"{device.name} no longer attached")
        return Snapshot(device, OK, extra={"serial": boards[device.id][1]})
