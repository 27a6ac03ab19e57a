"""The device adapter interface: what an adapter finds and what one reading holds.

Adapters import their hardware library lazily (never at module import) and may
block in ``discover``/``read``: the poller runs them on their own thread with a
timeout, so a hung board never stalls a metric collection.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from . import metrics as specs

# hw.state values, as the hardware semantic conventions use them.
OK, DEGRADED, FAILED = "ok", "degraded", "failed"
STATES = (OK, DEGRADED, FAILED)
_SEVERITY = {OK: 0, DEGRADED: 1, FAILED: 2}


def worst(states) -> str:
    """The most severe of ``states`` (``ok`` for none)."""
    return max(states, key=_SEVERITY.__getitem__, default=OK)


def missing_module(*names: str) -> str | None:
    """Name of the first module that is not installed, found without importing it."""
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a parent package is missing or broken
            return name
    return None


@dataclass(frozen=True)
class Device:
    """One piece of hardware; static facts, read once at discovery."""

    id: str  # hw.id: stable and bounded ("gpu0", "package-0", "spinnaker")
    type: str  # hw.type: "gpu", "cpu", "host", "neuromorphic"
    name: str  # hw.name: model ("NVIDIA H100 80GB HBM3", "Loihi 2")
    kind: str = ""  # health key, ``check_hardware().<kind>`` ("gpu", "loihi3", ...)

    def attributes(self) -> dict[str, str]:
        return dict(zip(specs.HW_ATTRS, (self.id, self.type, self.name)))


# Snapshot field that feeds each metric; other metrics read ``Snapshot.extra``
# under their metric name (a third-party adapter's own metric specs). Extra keys
# that are no metric name are health details (the host adapter's memory use).
FIELD_FOR_METRIC = {
    specs.HW_POWER.name: "power_w",
    specs.HW_ENERGY.name: "energy_j",
    specs.HW_UTILIZATION.name: "utilization",
    specs.HW_MEMORY_USAGE.name: "memory_used_bytes",
    specs.HW_MEMORY_LIMIT.name: "memory_limit_bytes",
    specs.HW_TEMPERATURE.name: "temperature_c",
    specs.NEUROMORPHIC_CORE_UTILIZATION.name: "core_utilization",
    specs.NEUROMORPHIC_SYNAPSE_UPDATES.name: "synapse_updates",
}


@dataclass(frozen=True)
class Snapshot:
    """One reading of one device; ``None`` means "not readable", never 0."""

    device: Device
    state: str = OK
    power_w: float | None = None
    energy_j: float | None = None  # cumulative since the device counter started
    utilization: float | None = None  # 0..1
    memory_used_bytes: int | None = None
    memory_limit_bytes: int | None = None
    temperature_c: float | None = None
    core_utilization: float | None = None  # neuromorphic cores in use, 0..1
    synapse_updates: int | None = None  # cumulative
    extra: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific readings
    error: str | None = None  # why the state is not ok

    def reading(self, metric: str) -> Any:
        """The value feeding ``metric`` (an OTel metric name), or None."""
        attr = FIELD_FOR_METRIC.get(metric)
        return getattr(self, attr) if attr else self.extra.get(metric)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.device.id, "type": self.device.type,
                               "name": self.device.name, "kind": self.device.kind,
                               "state": self.state}
        for attr in FIELD_FOR_METRIC.values():
            value = getattr(self, attr)
            if value is not None:
                out[attr] = value
        out.update({k: v for k, v in self.extra.items() if v is not None})
        if self.error:
            out["error"] = self.error
        return out


class Unavailable(Exception):
    """Raised by ``discover`` when the adapter cannot work here (the message says why)."""


class DeviceAdapter:
    """Base of every adapter: one module per adapter under ``devices/``.

    Subclasses set ``name``, ``hw_type`` and ``kinds`` and implement
    ``discover`` and ``read``. ``read`` returns a snapshot or raises: the poller
    turns an exception into a ``failed`` state and an ``hw.errors`` count.
    Third-party adapters register a subclass (or a factory taking the
    settings) under the entry-point group ``spikeformer_device_adapters``.
    """

    name: ClassVar[str] = ""
    hw_type: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()  # health keys this adapter answers for
    # Packages whose import means this hardware is in use: polling starts then.
    triggers: ClassVar[tuple[str, ...]] = ()
    # Reads the machine (host memory, every GPU, a board): in a torchrun job
    # only LOCAL_RANK 0 polls it, so each node reports it once. False for an
    # adapter that reads only what its own process uses.
    per_host: ClassVar[bool] = True

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    def unavailable_reason(self) -> str | None:
        """Why this adapter cannot work here (library missing, ...), or None.

        Must be cheap and must not import the hardware library: it decides,
        at start-up, which adapters get a polling thread.
        """
        return None

    def require_available(self) -> None:
        """Raise ``Unavailable`` with the reason, if any (first thing in ``discover``)."""
        reason = self.unavailable_reason()
        if reason:
            raise Unavailable(reason)

    def discover(self) -> Sequence[Device]:
        """The devices this adapter reads; may block (runs on the poller thread)."""
        raise NotImplementedError

    def read(self, device: Device) -> Snapshot:
        """A fresh reading of ``device``; may block; raises on failure."""
        raise NotImplementedError

    def close(self) -> None:
        """Release library handles; called once when polling stops."""

    def placeholder(self) -> Device:
        """The device reported when nothing was found but this adapter is required."""
        kind = self.kinds[0] if self.kinds else self.name
        return Device(self.name, self.hw_type, self.name, kind)
