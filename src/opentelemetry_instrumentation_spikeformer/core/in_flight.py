"""``spikeformer.active_conversions``: the conversions in progress, observed.

A synchronous up-down counter needs a +1 and a -1 that both happen; an
interrupt (Ctrl-C) inside the SDK's ``add`` can lose the -1 or, retried, apply
it twice. Here a call is an entry in a dict, added and removed by single dict
operations, so undoing it is idempotent, and the gauge is what the dict holds
at collection time.
"""

from __future__ import annotations

from typing import Any, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from . import attributes as a
from . import metrics as m


class InFlight:
    """Calls in progress by framework, for one meter (shared by its sessions)."""

    def __init__(self) -> None:
        self._calls: dict[int, str] = {}  # id(call) -> framework
        self._frameworks: set[str] = set()  # seen: reported as 0 when idle
        self._sessions: set[int] = set()  # open sessions; none: report nothing

    def open(self, session: Any) -> None:
        self._sessions.add(id(session))

    def close(self, session: Any) -> None:
        self._sessions.discard(id(session))

    def add(self, call: Any, framework: str) -> None:
        self._frameworks.add(framework)
        self._calls[id(call)] = framework

    def discard(self, call: Any) -> None:
        self._calls.pop(id(call), None)

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        if not self._sessions:
            return []
        counts = dict.fromkeys(self._frameworks, 0)
        for framework in list(self._calls.values()):
            counts[framework] = counts.get(framework, 0) + 1
        return [Observation(n, {a.M_FRAMEWORK: fw}) for fw, n in counts.items()]


def in_flight_for(meter: Any) -> InFlight:
    """The meter's ``InFlight`` and its observable instrument, created once."""
    def build() -> InFlight:
        gauge = InFlight()
        m.ACTIVE_CONVERSIONS.create(meter, [gauge.observe])
        return gauge

    return m.once_per("in_flight", meter, build)
