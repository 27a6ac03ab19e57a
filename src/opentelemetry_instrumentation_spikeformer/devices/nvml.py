"""NVIDIA GPUs through NVML (nvidia-ml-py, module ``pynvml``).

Units as NVML gives them, converted once: power mW -> W (float, not floored),
total energy mJ since the driver was loaded -> J, utilisation % -> 0..1.
Static facts (name, UUID, memory size, power limit) are read at discovery
only. A reading NVML does not support on this GPU is left out, never sent as 0.
"""

from __future__ import annotations

from typing import Any, Callable

from .base import OK, Device, DeviceAdapter, Snapshot, Unavailable, missing_module

# Snapshot field <- (NVML getter, extra positional args, conversion).
_READINGS: tuple[tuple[str, str, tuple, Callable[[Any], Any]], ...] = (
    ("power_w", "nvmlDeviceGetPowerUsage", (), lambda mw: mw / 1000.0),
    ("energy_j", "nvmlDeviceGetTotalEnergyConsumption", (), lambda mj: mj / 1000.0),
    ("utilization", "nvmlDeviceGetUtilizationRates", (), lambda u: u.gpu / 100.0),
    ("memory_used_bytes", "nvmlDeviceGetMemoryInfo", (), lambda m: int(m.used)),
    ("temperature_c", "nvmlDeviceGetTemperature", ("NVML_TEMPERATURE_GPU",), float),
)
# Errors that mean "this GPU cannot give that reading": skip it, keep the rest.
_SKIPPABLE = ("NVMLError_NotSupported", "NVMLError_NoPermission", "NVMLError_FunctionNotFound",
              "NVMLError_NoData")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlAdapter(DeviceAdapter):
    name = "nvml"
    hw_type = "gpu"
    kinds = ("gpu",)
    triggers = ("pynvml",)

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self._nvml = None
        self._handles: dict[str, Any] = {}
        self._static: dict[str, dict[str, Any]] = {}
        self._memory_limit: dict[str, int] = {}

    def unavailable_reason(self) -> str | None:
        if missing_module("pynvml"):
            return "nvidia-ml-py not installed"
        return None

    def discover(self):
        self.require_available()
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise Unavailable(f"no NVIDIA driver ({exc})") from None
        self._nvml = pynvml
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            device = Device(f"gpu{index}", self.hw_type, _text(pynvml.nvmlDeviceGetName(handle)),
                            "gpu")
            self._handles[device.id] = handle
            self._memory_limit[device.id] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            static = {"uuid": _text(pynvml.nvmlDeviceGetUUID(handle)), "index": index}
            limit = self._optional(pynvml.nvmlDeviceGetPowerManagementLimit, handle)
            if limit is not None:
                static["power_limit_w"] = limit / 1000.0
            self._static[device.id] = static
            devices.append(device)
        return devices

    def _optional(self, getter, *args):
        try:
            return getter(*args)
        except self._nvml.NVMLError as exc:
            if type(exc).__name__ in _SKIPPABLE:
                return None
            raise

    def read(self, device: Device) -> Snapshot:
        nvml, handle = self._nvml, self._handles[device.id]
        values: dict[str, Any] = {}
        for field_name, getter, args, convert in _READINGS:
            raw = self._optional(getattr(nvml, getter), handle,
                                 *(getattr(nvml, a) for a in args))
            if raw is not None:
                values[field_name] = convert(raw)
        return Snapshot(device, OK, memory_limit_bytes=self._memory_limit[device.id],
                        extra=self._static[device.id], **values)

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # already shut down or driver gone
                pass
            self._nvml = None
