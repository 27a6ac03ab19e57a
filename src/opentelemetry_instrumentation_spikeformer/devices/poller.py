"""Probes adapters off the collection thread; gauges and health read the last result.

Each adapter gets its own daemon thread that discovers once and then reads its
devices when triggered. One controller thread triggers every adapter each
``interval`` and waits at most ``timeout`` for them: a probe still running then
counts as timed out (device ``failed``, one ``hw.errors`` with
``error.type=timeout``) and that adapter is not triggered again until it
returns. Readers only copy results under a short lock, so a collection never
waits for hardware.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterable

from ..core import forksafe
from ..core.attributes import EVENT_TYPE, EVENTS_LOGGER
from .base import DEGRADED, FAILED, OK, Device, Snapshot, Unavailable, worst
from .registry import Enabled

_LOG = logging.getLogger(__name__)
# Hardware error / recovery events for structured logs (as NeuromorphicLogger.log_hardware_error).
EVENTS = logging.getLogger(EVENTS_LOGGER)
TIMEOUT = "timeout"  # error.type of a probe that ran past the timeout
_SLICE = 0.05  # s; how often a waiting controller checks for stop

# Adapter status in health output.
UP, DOWN, ABSENT, PENDING = "up", "down", "absent", "pending"
_STATUS = {OK: UP, DEGRADED: DEGRADED, FAILED: DOWN}


@dataclass(frozen=True)
class AdapterView:
    """A copy of one adapter's last results."""

    name: str
    required: bool
    status: str  # up | degraded | down | absent | pending
    reason: str | None
    snapshots: tuple[Snapshot, ...]
    errors: tuple[tuple[Device, str, int], ...]  # (device, error.type, count)
    kinds: tuple[str, ...]

    def to_dict(self) -> dict:
        out = {"adapter": self.name, "required": self.required, "status": self.status,
               "devices": [s.to_dict() for s in self.snapshots]}
        if self.reason:
            out["reason"] = self.reason
        if self.errors:
            out["errors"] = {f"{d.id}:{kind}": n for d, kind, n in self.errors}
        return out


class _Probe:
    """One adapter, its thread and its last results."""

    def __init__(self, enabled: Enabled, timeout: float) -> None:
        self.adapter = enabled.adapter
        self.required = enabled.required
        self.timeout = timeout
        self._lock = forksafe.lock()
        self._devices: list[Device] | None = None
        self._snapshots: dict[str, Snapshot] = {}
        self._errors: dict[tuple[Device, str], int] = {}
        self._reason: str | None = None
        self._done_once = False
        self._retired = False  # not required and nothing to read: no thread
        self._logged: dict[str, str] = {}  # device id -> last state an event was logged for
        self._go = forksafe.event()
        self._idle = forksafe.event()
        self._idle.set()
        self._closing = False
        self._thread: threading.Thread | None = None
        reason = self.adapter.unavailable_reason()
        if reason:
            self._absent(reason)

    # -- controller side ------------------------------------------------
    def trigger(self) -> bool:
        """Start a probe unless one is still running; False when not started."""
        if self._retired or self._closing or not self._idle.is_set():
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                             name=f"spikeformer-device-{self.adapter.name}")
            self._thread.start()
        self._idle.clear()
        self._go.set()
        return True

    def wait(self, deadline: float, stop: threading.Event) -> None:
        """Wait for the running probe until ``deadline``; past it, mark it timed out."""
        while not self._idle.wait(min(_SLICE, max(0.0, deadline - time.monotonic()))):
            if stop.is_set():
                return
            if time.monotonic() >= deadline:
                break
        with self._lock:
            if self._idle.is_set():
                return
            devices = self._devices or [self.adapter.placeholder()]
            message = f"probe timed out after {self.timeout:g} s"
            failed = [Snapshot(d, FAILED, error=message) for d in devices]
            for device in devices:
                self._count(device, TIMEOUT)
            changes = self._store(failed, None)
        self._log(changes)

    def close(self) -> None:
        self._closing = True
        self._go.set()

    # -- probe thread ---------------------------------------------------
    def _run(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            if self._closing:
                break
            try:
                self._probe()
            except Exception:  # our own bug: never kill the thread silently
                _LOG.debug("device probe %s crashed", self.adapter.name, exc_info=True)
            finally:
                self._idle.set()
            if self._retired:
                break
        try:
            self.adapter.close()
        except Exception:
            _LOG.debug("device adapter %s failed to close", self.adapter.name, exc_info=True)

    def _probe(self) -> None:
        if self._devices is None:
            try:
                devices = list(self.adapter.discover())
            except Unavailable as exc:
                self._absent(str(exc))
                return
            except Exception as exc:
                device = self.adapter.placeholder()
                self._record([Snapshot(device, FAILED, error=_message(exc))],
                             [(device, type(exc).__qualname__)])
                return
            if not devices:
                self._absent("no device found")
                return
            with self._lock:
                self._devices = devices
                for device in devices:  # counters start at 0: a series before the first error
                    self._errors.setdefault((device, TIMEOUT), 0)
        snapshots, errors = [], []
        for device in self._devices:
            try:
                snapshots.append(self.adapter.read(device))
            except Exception as exc:
                snapshots.append(Snapshot(device, FAILED, error=_message(exc)))
                errors.append((device, type(exc).__qualname__))
        self._record(snapshots, errors)

    def _absent(self, reason: str) -> None:
        """Nothing to read: required adapters report down, the others retire."""
        if not self.required:
            with self._lock:
                self._retired = True
                self._reason = reason
                self._done_once = True
            return
        self._record([Snapshot(self.adapter.placeholder(), FAILED, error=reason)], [], reason)

    def _record(self, snapshots: list[Snapshot], errors: list[tuple[Device, str]],
                reason: str | None = None) -> None:
        with self._lock:
            for device, kind in errors:
                self._count(device, kind)
            changes = self._store(snapshots, reason)
        self._log(changes)

    # -- shared, under the lock ------------------------------------------
    def _count(self, device: Device, kind: str) -> None:
        self._errors[(device, kind)] = self._errors.get((device, kind), 0) + 1

    def _store(self, snapshots: Iterable[Snapshot], reason: str | None) -> list[Snapshot]:
        """Keep the new results; return those whose failed/not-failed state changed."""
        self._snapshots = {s.device.id: s for s in snapshots}
        self._reason = reason
        self._done_once = True
        changes = []
        for snap in self._snapshots.values():
            failed = snap.state == FAILED
            before = self._logged.get(snap.device.id)
            if (before == FAILED) != failed and (failed or before is not None):
                changes.append(snap)
            self._logged[snap.device.id] = FAILED if failed else OK
        return changes

    def _log(self, changes: list[Snapshot]) -> None:
        for snap in changes:
            fields = {"hardware_type": snap.device.kind or self.adapter.name,
                      "hw_id": snap.device.id, "adapter": self.adapter.name}
            if snap.state == FAILED:
                EVENTS.error("Hardware error on %s: %s", snap.device.id, snap.error,
                             extra={EVENT_TYPE: "hardware_error",
                                    "error_message": snap.error, **fields})
            else:
                EVENTS.info("Hardware %s recovered", snap.device.id,
                            extra={EVENT_TYPE: "hardware_recovered", **fields})

    def view(self) -> AdapterView:
        with self._lock:
            snapshots = tuple(self._snapshots.values())
            errors = tuple((d, k, n) for (d, k), n in self._errors.items())
            reason, done = self._reason, self._done_once
        if self._retired:
            status = ABSENT
        elif not done:
            status = PENDING
        else:
            status = _STATUS[worst(s.state for s in snapshots)]
        return AdapterView(self.adapter.name, self.required, status, reason, snapshots, errors,
                           tuple(self.adapter.kinds))


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class Poller:
    """Polls adapters every ``interval`` s, each probe bounded by ``timeout`` s."""

    def __init__(self, enabled: list[Enabled], interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self._probes = [_Probe(e, timeout) for e in enabled]
        self._stop = forksafe.event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Poller":
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="spikeformer-device-poller")
        self._thread.start()
        return self

    def run_once(self) -> list[AdapterView]:
        """One probe of every adapter, bounded by ``timeout`` (for one-shot health checks)."""
        self._round()
        return self.views()

    def stop(self) -> None:
        self._stop.set()
        for probe in self._probes:
            probe.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def views(self) -> list[AdapterView]:
        return [p.view() for p in self._probes]

    def _round(self) -> None:
        deadline = time.monotonic() + self.timeout
        started = [p for p in self._probes if p.trigger()]
        for probe in started:
            probe.wait(deadline, self._stop)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._round()
            except Exception:
                _LOG.debug("device poll round failed", exc_info=True)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))
