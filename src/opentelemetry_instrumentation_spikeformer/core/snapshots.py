"""Observable gauges that report only the latest snapshot of each publisher.

A synchronous gauge reports every attribute set it was ever given: after a
mapping onto three chips and then one onto a single chip, chips 1 and 2 would
still show their old values. Here a publisher (a toolchain extension) replaces
its whole snapshot at once, so the series are those of its latest result.

Observable callbacks cannot be unregistered, and the SDK keeps only the first
callback of an instrument name on a meter, so each gauge is created once per
meter. Its callback serves the ``Telemetry`` that published last on that meter,
and nothing once that one is closed (uninstrumented).
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Observation

from .metrics import MetricSpec

Point = tuple[float, Mapping[str, Any]]  # value, attributes
Snapshot = Mapping[MetricSpec, Iterable[Point]]


class SnapshotGauges:
    """The snapshot gauges of one meter."""

    def __init__(self, meter: Any) -> None:
        self.meter = meter
        self._created: set[str] = set()
        self._groups: dict[str, dict[str, list[tuple[float, dict]]]] = {}
        self._owner: Any = None  # weakref to the Telemetry being served
        self._lock = threading.Lock()

    def publish(self, owner: Any, group: str, snapshot: Snapshot) -> None:
        """Make ``snapshot`` the whole of ``group``'s values (other groups stay)."""
        values = {}
        for spec, points in snapshot.items():
            if spec.kind != "observable_gauge":
                raise ValueError(f"{spec.name}: snapshots need an observable_gauge spec")
            values[spec.name] = [(value, dict(attrs)) for value, attrs in points]
        with self._lock:
            if self._owner is None or self._owner() is not owner:
                self._owner = weakref.ref(owner)  # a new session: forget the old one's values
                self._groups = {}
            self._groups[group] = values
            new = [spec for spec in snapshot if spec.name not in self._created]
            self._created.update(spec.name for spec in new)
        for spec in new:
            spec.create(self.meter, [functools.partial(self._observe, spec.name)])

    def _observe(self, name: str, _options: CallbackOptions) -> list[Observation]:
        with self._lock:
            owner = self._owner() if self._owner is not None else None
            if owner is None or owner.closed:
                return []
            return [Observation(value, attrs) for group in self._groups.values()
                    for value, attrs in group.get(name, ())]


_BY_METER: dict[int, SnapshotGauges] = {}
_LOCK = threading.Lock()


def snapshot_gauges(meter: Any) -> SnapshotGauges:
    """The snapshot gauges of ``meter``, created on first use."""
    with _LOCK:
        found = _BY_METER.get(id(meter))
        if found is None or found.meter is not meter:
            found = _BY_METER[id(meter)] = SnapshotGauges(meter)
        return found
