"""Adapters written against our interface for poller / health tests, and metric helpers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from opentelemetry_instrumentation_spikeformer.devices.base import (
    OK, Device, DeviceAdapter, Snapshot,
)
from opentelemetry_instrumentation_spikeformer.devices.registry import Enabled


class Steady(DeviceAdapter):
    """Answers at once with fixed readings."""

    name, hw_type, kinds = "steady", "gpu", ("steady",)

    def discover(self):
        return [Device("steady0", self.hw_type, "Steady GPU", "steady")]

    def read(self, device):
        return Snapshot(device, OK, power_w=12.5, energy_j=100.0, utilization=0.25,
                        memory_used_bytes=1024, memory_limit_bytes=4096, temperature_c=40.0)


class Hang(DeviceAdapter):
    """A board that never answers: read blocks until the test releases it."""

    name, hw_type, kinds = "hang", "neuromorphic", ("hang",)

    def __init__(self, settings=None):
        super().__init__(settings)
        self.release = threading.Event()
        self.entered = threading.Event()

    def discover(self):
        return [Device("hang0", self.hw_type, "Hanging board", "hang")]

    def read(self, device):
        self.entered.set()
        self.release.wait()  # forever, unless the test lets go
        return Snapshot(device, OK, power_w=1.0)


class Flaky(DeviceAdapter):
    """Fails while ``failing`` is set, with the exception class the test picks."""

    name, hw_type, kinds = "flaky", "neuromorphic", ("flaky",)

    def __init__(self, settings=None):
        super().__init__(settings)
        self.failing = True
        self.reads = 0

    def discover(self):
        return [Device("flaky0", self.hw_type, "Flaky board", "flaky")]

    def read(self, device):
        self.reads += 1
        if self.failing:
            raise ConnectionError("board did not answer")
        return Snapshot(device, OK, power_w=3.0, core_utilization=0.5, synapse_updates=7)


class Empty(DeviceAdapter):
    """Finds nothing."""

    name, hw_type, kinds = "empty", "neuromorphic", ("empty",)

    def discover(self):
        return []


def enabled(*adapters, required=()):
    return [Enabled(a, a.name in required) for a in adapters]


def wait_for(predicate, timeout=5.0, step=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def view(poller, name):
    return next(v for v in poller.views() if v.name == name)


def free_port() -> int:
    """A loopback TCP port nothing listens on (just released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def make_rapl_zone(root: Path, index: int, name: str, energy: int, max_range: int) -> Path:
    """A powercap zone as Linux lays it out (plus a core subzone, not a device)."""
    zone = root / f"intel-rapl:{index}"
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{name}\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    sub = root / f"intel-rapl:{index}:0"  # a subzone (core): not a device of its own
    sub.mkdir()
    (sub / "name").write_text("core\n")
    return zone
