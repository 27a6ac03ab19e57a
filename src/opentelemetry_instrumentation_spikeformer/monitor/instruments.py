"""OTel instruments of the spike monitor: one set per meter provider.

Counters and gauges are observable: the first callback of a collection cycle
reads every attached monitor once (``SpikeMonitor.read``, one device transfer
each; a monitor whose ``version`` has not moved since its last read, an idle
model, is not read again) and the other callbacks of that cycle reuse the result. Gauges describe
the interval since the previous cycle. OTel histograms are synchronous only,
so the membrane potential samples that the hooks kept on the device are
recorded into the histogram from inside that same read, a bounded number per
layer; the SDK runs every callback before it aggregates, so they land in the
same collection.

A fork child (a DataLoader worker with the default start method) inherits the
parent's monitors and their counts; it reports none of them (``_INSTANCES``
forgets them at fork), or every worker would re-export the parent's totals
under its own ``service.instance.id``.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from ..core import attributes as a
from ..core import forksafe
from ..core.errors import log_internal_error
from ..core.metrics import once_per
from ..core.scope import get_meter
from . import metrics as specs
from .naming import ModelNames

# Membrane values recorded per monitor and collection (a synchronous record
# costs microseconds). With more layers than this, each collection records one
# value for a rotating subset of the layers.
MEMBRANE_RECORDS_PER_COLLECTION = 128


def _delta(current: float, previous: float | None) -> float:
    """Growth since the previous read; a smaller value means a reset."""
    if previous is None or current < previous:
        return current
    return current - previous


@dataclass
class _Previous:
    """What the previous cycle read from one monitor."""

    layers: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    snn_total_mj: float | None = None
    inferences: float | None = None
    extra: dict[tuple, float] = field(default_factory=dict)  # synops by input, magnitude


@dataclass
class _Cycle:
    """Figures of one collection cycle, by attribute set."""

    counters: dict[tuple, tuple[float, float]] = field(default_factory=dict)
    rates: dict[tuple, list[float]] = field(default_factory=dict)
    energy: dict[tuple, list[float]] = field(default_factory=dict)
    synops: dict[tuple, float] = field(default_factory=dict)  # (layer key, input) -> total
    magnitude: dict[tuple, float] = field(default_factory=dict)
    memory: dict[tuple, list[float]] = field(default_factory=dict)  # (model,) -> [mJ, n]


class MonitorInstruments:
    def __init__(self, meter: Any) -> None:
        self._monitors: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._previous: "weakref.WeakKeyDictionary[Any, _Previous]" = weakref.WeakKeyDictionary()
        # Each monitor's last snapshot and the version it was read at.
        self._snapshots: "weakref.WeakKeyDictionary[Any, tuple[Any, dict]]" = (
            weakref.WeakKeyDictionary())
        self._exported: dict[tuple, list[float]] = {}  # cumulative, survives resets
        self._exported_extra: dict[tuple, float] = {}
        # Latest per-inference estimate of each monitor: (model, hardware),
        # SNN mJ, ANN mJ. Reported while the monitor stays attached (or retired),
        # so that an idle model keeps its series (alerts with `for:` need them).
        self._latest: "weakref.WeakKeyDictionary[Any, tuple[tuple, float, float]]" = (
            weakref.WeakKeyDictionary())
        self._latest_memory: "weakref.WeakKeyDictionary[Any, tuple[tuple, float]]" = (
            weakref.WeakKeyDictionary())
        self._cycle = _Cycle()
        self._consumed: set[str] = set()
        self._cycles = 0
        self._attrs: dict[tuple, dict[str, str]] = {}
        self._lock = forksafe.lock()
        self.names = ModelNames()  # model_name values handed out on this provider

        self.membrane = specs.MEMBRANE_POTENTIAL.create(meter)
        for spec, callback in ((specs.NEURAL_SPIKES, self._spikes),
                               (specs.NEURAL_SYNOPS, self._synops),
                               (specs.NEURAL_FIRING_RATE, self._firing_rate),
                               (specs.SPIKE_RATE, self._spike_rate),
                               (specs.ENERGY_ESTIMATE, self._energy),
                               (specs.ENERGY_EFFICIENCY, self._ratio),
                               (specs.NEURAL_SPIKE_MAGNITUDE, self._magnitude),
                               (specs.ENERGY_MEMORY_AWARE, self._memory)):
            spec.create(meter, [callback])
        _INSTANCES.add(self)

    def add(self, monitor: Any) -> None:
        self._monitors.add(monitor)

    def forget_inherited(self) -> None:
        """In a fork child: drop the parent's monitors and totals; monitors
        attached in the child from now on report as usual."""
        self._monitors = weakref.WeakSet()
        self._previous = weakref.WeakKeyDictionary()
        self._snapshots = weakref.WeakKeyDictionary()
        self._latest = weakref.WeakKeyDictionary()
        self._exported = {}
        self._cycle, self._consumed = _Cycle(), set()

    # -- one read per collection cycle ----------------------------------------
    def _current(self, instrument: str) -> _Cycle:
        with self._lock:
            if not self._consumed or instrument in self._consumed:
                self._consumed = set()
                try:
                    self._cycle = self._refresh()
                except Exception:
                    log_internal_error("spike monitor collection")
                    self._cycle = _Cycle()
            self._consumed.add(instrument)
            return self._cycle

    def _refresh(self) -> _Cycle:
        cycle = _Cycle()
        self._cycles += 1
        for monitor in list(self._monitors):
            if not (monitor.attached or monitor.retired):
                continue
            version = monitor.version
            cached = self._snapshots.get(monitor)
            if cached is not None and cached[0] == version:
                snap = cached[1]  # nothing ran since: no device work, zero deltas
            else:
                try:
                    snap = monitor.read()
                except Exception:
                    log_internal_error("spike monitor read")
                    continue
                self._snapshots[monitor] = (version, snap)
            previous = self._previous.get(monitor) or _Previous()
            self._previous[monitor] = self._account(monitor, snap, previous, cycle)
        for monitor, (key, snn_mj, ann_mj) in list(self._latest.items()):
            if monitor.attached or monitor.retired:
                agg = cycle.energy.setdefault(key, [0.0, 0.0, 0.0])
                agg[0] += snn_mj
                agg[1] += 1
                agg[2] += ann_mj
        for monitor, (key, mj) in list(self._latest_memory.items()):
            if monitor.attached:
                agg = cycle.memory.setdefault(key, [0.0, 0.0])
                agg[0] += mj
                agg[1] += 1
        return cycle

    def _account(self, monitor: Any, snap: dict, previous: _Previous, cycle: _Cycle) -> _Previous:
        model = snap["model"]
        seconds = snap["timestep_ms"] / 1000.0
        now = _Previous()
        layers = snap["layers"]
        budget = MEMBRANE_RECORDS_PER_COLLECTION
        per_layer = max(1, budget // max(1, len(layers)))
        rotate = -(-len(layers) // budget)
        for index, row in enumerate(layers):
            label = row["layer"]
            key = (model, label, row["neuron_type"])
            last = previous.layers.get(label)
            spikes = _delta(row["spikes"], last[0] if last else None)
            synops = _delta(row["synops"], last[1] if last else None)
            steps = _delta(row["neuron_steps"], last[2] if last else None)
            total = self._exported.setdefault(key, [0.0, 0.0])
            total[0] += spikes
            total[1] += synops
            cycle.counters[key] = (total[0], total[1])
            rate = cycle.rates.setdefault(key, [0.0, 0.0, 0.0])
            rate[0] += spikes
            rate[1] += steps
            rate[2] += steps * seconds
            now.layers[label] = (row["spikes"], row["synops"], row["neuron_steps"],
                                 row["membrane_rows"])
            if row["membrane_rows"] != (last[3] if last else 0) \
                    and (index + self._cycles) % rotate == 0:
                attrs = self._layer_attrs(key)
                for value in row["membrane_sample"][:per_layer]:
                    self.membrane.record(value if value > 0.0 else 0.0, attrs)
        self._account_extra(monitor, snap, previous, now, cycle)
        est = snap["energy"]
        now.snn_total_mj = est["snn_total_mj"]
        now.inferences = snap["inferences"]
        inferences = _delta(snap["inferences"], previous.inferences)
        snn = _delta(est["snn_total_mj"], previous.snn_total_mj)
        if inferences > 0:
            self._latest[monitor] = ((model, est["hardware"]), snn / inferences,
                                     est["ann_mj"] or 0.0)
        return now

    def _account_extra(self, monitor: Any, snap: dict, previous: _Previous, now: _Previous,
                        cycle: _Cycle) -> None:
        """SOPs by input category, event magnitude, the memory-aware estimate."""
        model = snap["model"]
        for row in snap["layers"]:
            key = (model, row["layer"], row["neuron_type"])
            values = [(("synops", kind), v) for kind, v in row["synops_by_input"].items()]
            if row.get("output") not in ("binary", "count"):
                values.append((("magnitude",), row["magnitude"]))
            for name, value in values:
                mark = (row["layer"], *name)
                now.extra[mark] = value
                grew = _delta(value, previous.extra.get(mark))
                total_key = (*key, *name)
                total = self._exported_extra.get(total_key, 0.0) + grew
                if total <= 0.0 and total_key not in self._exported_extra:
                    continue  # an input category this layer never saw: no series
                self._exported_extra[total_key] = total
                if name[0] == "synops":
                    cycle.synops[(key, name[1])] = total
                else:
                    cycle.magnitude[key] = total
        memory = snap.get("energy_memory") or {}
        total_pj = memory.get("total_pj")
        if total_pj is not None:
            now.extra[("memory_pj",)] = total_pj
            grew = _delta(total_pj, previous.extra.get(("memory_pj",)))
            inferences = _delta(snap["inferences"], previous.inferences)
            if inferences > 0:
                self._latest_memory[monitor] = ((model,), grew * 1e-9 / inferences)

    # -- callbacks --------------------------------------------------------------
    def _layer_attrs(self, key: tuple) -> dict[str, str]:
        found = self._attrs.get(key)
        if found is None:
            names = (a.M_MODEL_NAME, a.M_LAYER_NAME, a.M_NEURON_TYPE)
            found = self._attrs[key] = dict(zip(names, key))
        return found

    def _spikes(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("spikes")
        return [Observation(v[0], self._layer_attrs(k)) for k, v in cycle.counters.items()]

    def _synops(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("synops")
        return [Observation(v, {**self._layer_attrs(k), a.M_SYNOP_INPUT: kind})
                for (k, kind), v in cycle.synops.items()]

    def _magnitude(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("magnitude")
        return [Observation(v, self._layer_attrs(k)) for k, v in cycle.magnitude.items()]

    def _memory(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("memory")
        return [Observation(v[0] / v[1], {a.M_MODEL_NAME: k[0]})
                for k, v in cycle.memory.items() if v[1] > 0]

    def _firing_rate(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("firing_rate")
        return [Observation(v[0] / v[1], self._layer_attrs(k))
                for k, v in cycle.rates.items() if v[1] > 0]

    def _spike_rate(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("spike_rate")
        return [Observation(v[0] / v[2], self._layer_attrs(k))
                for k, v in cycle.rates.items() if v[2] > 0]

    @staticmethod
    def _energy_attrs(key: tuple) -> dict[str, str]:
        return {a.M_MODEL_NAME: key[0], a.M_HARDWARE_TARGET: key[1]}

    def _energy(self, _options: CallbackOptions) -> Iterable[Observation]:
        """Mean SNN energy per inference of the attached monitors, per model and target."""
        cycle = self._current("energy")
        return [Observation(v[0] / v[1], self._energy_attrs(k))
                for k, v in cycle.energy.items() if v[1] > 0]

    def _ratio(self, _options: CallbackOptions) -> Iterable[Observation]:
        cycle = self._current("ratio")
        return [Observation(v[2] / v[0], self._energy_attrs(k))
                for k, v in cycle.energy.items() if v[0] > 0 and v[2] > 0]


# Every instrument set of this process, for the fork handler below.
_INSTANCES: "weakref.WeakSet[MonitorInstruments]" = weakref.WeakSet()


def _forget_inherited_monitors() -> None:
    for instruments in list(_INSTANCES):
        instruments.forget_inherited()


os.register_at_fork(after_in_child=_forget_inherited_monitors)


def instruments_for(meter_provider: Any = None) -> MonitorInstruments:
    """The instrument set of ``meter_provider`` (global when ``None``), created once:
    observable callbacks cannot be unregistered, so they are never duplicated."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    return once_per("spike_monitor", provider, lambda: MonitorInstruments(get_meter(provider)))
