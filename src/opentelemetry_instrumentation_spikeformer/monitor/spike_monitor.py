"""``SpikeMonitor``: hooks on a model's spiking layers, read once per collection.

The forward path only accumulates on the device (``synops.Topology`` and
``tally``); ``read()`` is the one place that moves data to the host, in one
transfer per device for all layers.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from ..core import attributes as a
from ..core import model_info
from ..core.settings import Settings, load_settings
from . import accumulate, energy, hooks, neurons
from .dataflow import CATEGORIES
from .synops import Topology, summarize

_LOG = logging.getLogger(__name__)

# Every attached monitor by model, so that auto-attach does not attach twice.
_BY_MODEL: "weakref.WeakKeyDictionary[Any, list[SpikeMonitor]]" = weakref.WeakKeyDictionary()


def monitors_of(model: Any) -> list["SpikeMonitor"]:
    try:
        return [m for m in _BY_MODEL.get(model, ()) if m.attached]
    except TypeError:
        return []


class SpikeMonitor:
    """Spike, synop and energy accounting for one model. Use ``monitor_model``."""

    def __init__(self, model: Any, name: str, settings: Settings,
                 hardware: str | None = None) -> None:
        self.name = str(name)
        self.sample_every = int(settings.monitor_sample_every)
        self.timestep_ms = float(settings.timestep_ms)
        self.max_layers = int(settings.max_layers)
        self.table = energy.select(hardware, settings.energy_hardware, settings.energy_table)
        self.hardware = self.table.name
        self._model = weakref.ref(model)
        self.sequencer = accumulate.Sequencer(self.sample_every)
        self.attached = False
        self.retired = False  # detached by uninstrument(): counts frozen, still reported
        self._resets = 0
        self._handles: list[Any] = []
        self._lead_handle: Any = None
        self.layers: list[accumulate.LayerState] = []
        self._layer_of: dict[int, accumulate.LayerState] = {}
        self._collect_layers(model)
        self.topology = Topology(model, self._layer_of, self.sequencer)
        # A weak method: a bound one would make monitor and topology a cycle that
        # outlives the model until a second garbage collection.
        self.topology.on_forward_end = weakref.WeakMethod(self._forward_end)
        self._membrane_budget = accumulate.MEMBRANE_ROWS

    # Counts of the lead (first) spiking layer: what an inference is.
    @property
    def inferences(self) -> int:
        return self.sequencer.inferences

    @property
    def forwards(self) -> int:
        return self.sequencer.forwards

    @property
    def sample_steps(self) -> int:
        return self.sequencer.sample_steps

    def _collect_layers(self, model: Any) -> None:
        """Spiking layers in module order; those past ``max_layers`` fold into ``other``."""
        found: list[tuple[str, Any, neurons.NeuronRule]] = []
        inside: set[int] = set()
        for name, module in model.named_modules():
            if id(module) in inside:
                continue
            kind = neurons.kind_of(module)
            if kind is None:
                continue
            found.append((name or type(module).__name__, module, kind))
            inside.update(id(m) for m in module.modules())
        folded = found[self.max_layers:]
        types = {type(m).__name__ for _, m, _ in folded}
        other_type = types.pop() if len(types) == 1 else a.OTHER
        for index, (name, module, rule) in enumerate(found):
            if index < self.max_layers:
                label, neuron_type = name, type(module).__name__
            else:
                label, neuron_type = a.OTHER, other_type
            layer = accumulate.LayerState(name, module, rule, label, neuron_type,
                                          self.sequencer)
            self.layers.append(layer)
            self._layer_of[id(module)] = layer

    # -- attach / detach ------------------------------------------------------
    def _attach(self) -> "SpikeMonitor":
        model = self._model()
        if model is None or self.attached:
            return self
        try:
            self._set_lead(self.layers[0] if self.layers else None)
            self.topology.start()
            self.attached = True
            mine = _BY_MODEL.setdefault(model, [])
            for other in mine:
                other.retired = False  # a new monitor replaces the frozen ones
            mine[:] = [m for m in mine if m.attached and m is not self] + [self]
        except BaseException:  # interrupted half-way: no hook of ours stays behind
            self.attached = True
            self.detach()
            raise
        return self

    def _set_lead(self, layer: accumulate.LayerState | None) -> None:
        if self._lead_handle is not None:
            self._lead_handle.remove()
            self._lead_handle = None
        for other in self.layers:
            other.is_lead = other is layer
        module = layer.module() if layer is not None else None
        per_forward = module is None or layer.rule.sequence_per_forward(module)
        self.sequencer.lead_per_forward = per_forward
        if not per_forward:  # single-step: a sequence starts where the state was reset
            self._lead_handle = hooks.forward_pre_hook(module, layer.pre_hook, with_kwargs=True)
            self._handles.append(hooks.forward_hook(module, layer.hook))

    def detach(self) -> None:
        """Remove every hook; the observable instruments stop reporting this model."""
        if not (self.attached or self.retired):
            return
        if self.attached:
            self._unhook()
        self.attached = self.retired = False
        model = self._model()
        if model is not None:
            mine = _BY_MODEL.get(model, [])
            if self in mine:
                mine.remove(self)

    def retire(self) -> None:
        """Stop counting, but keep reporting the counts so far while the model
        lives: ``uninstrument()`` followed by ``meter_provider.shutdown()`` then
        still exports the final values (observable instruments are only read at
        collection time). Attaching a new monitor to the model drops it."""
        if not self.attached:
            return
        self._unhook()
        self.attached = False
        self.retired = True

    def _unhook(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._lead_handle is not None:
            self._lead_handle.remove()
            self._lead_handle = None
        self.topology.stop()

    def __enter__(self) -> "SpikeMonitor":
        return self

    def __exit__(self, *_exc) -> None:
        self.detach()

    def reset(self) -> None:
        """Start counting afresh (the exported counters stay monotonic)."""
        for layer in self.layers:
            layer.reset()
        self.sequencer.reset()
        self.topology.reset()
        self._resets += 1

    @property
    def version(self) -> tuple[int, int, bool]:
        """Changes whenever ``read()`` would return something new (a counted
        forward, a reset) or say something (the first forward under
        torch.compile, which is not counted): a collection re-reads only
        monitors whose version moved, so idle models, and dropped ones the
        garbage collector has not reached yet, cost no device work."""
        return self._resets, self.sequencer.forwards, self.topology._compiled_seen

    def _forward_end(self, tally: Any) -> None:
        """After each counted forward: what an inference is, membrane samples."""
        plan = tally.plan
        self.sequencer.count_lead(plan.batch, plan.steps)
        if self._membrane_budget > 0:
            self._membrane_budget -= 1
            for layer in self.layers:
                layer.sample_membrane()

    # -- read ---------------------------------------------------------------
    def _finish_topology(self) -> None:
        topo = self.topology
        if topo.done and topo.order:
            lead = self._layer_of.get(topo.order[0])
            if lead is not None and not lead.is_lead and self.attached:
                self._set_lead(lead)

    def read(self, detail: bool = False) -> dict[str, Any]:
        """Snapshot in plain Python: per-layer counts, totals, sparsity, energy.

        The only place that transfers from the device (one transfer per device).
        ``detail``: also every consumer op (scope, kind, category, SOPs).
        """
        import torch

        self._finish_topology()
        summary = summarize(self.topology, self.layers, detail)
        membrane: dict[int, list[float]] = {}
        samples = [(layer, layer.latest_membrane()) for layer in self.layers]
        samples = [(layer, v) for layer, v in samples if v is not None]
        if samples:
            by_device: dict[Any, list] = {}
            for layer, values in samples:
                by_device.setdefault(values.device, []).append((layer, values))
            with torch.inference_mode(False), torch.no_grad():
                for entries in by_device.values():
                    host = torch.cat([v for _, v in entries]).cpu().tolist()
                    at = 0
                    for layer, values in entries:
                        membrane[id(layer)] = host[at:at + values.numel()]
                        at += values.numel()
        self._membrane_budget = accumulate.MEMBRANE_ROWS
        return self._snapshot(summary, membrane, detail)

    def _snapshot(self, summary: dict, membrane: dict, detail: bool) -> dict[str, Any]:
        rows: dict[str, dict[str, Any]] = {}
        counted = summary["rows"]
        for layer in self.layers:
            found = counted.get(id(layer))
            row = rows.get(layer.label)
            if row is None:
                row = rows[layer.label] = {
                    "layer": layer.label, "neuron_type": layer.neuron_type,
                    "role": layer.role, "output": layer.output, "neurons": 0,
                    "spikes": 0.0, "magnitude": 0.0, "synops": 0.0,
                    "synops_by_input": {k: 0.0 for k in CATEGORIES}, "timesteps": 0,
                    "forwards": 0, "neuron_steps": 0, "fanout": "none",
                    "membrane_rows": 0, "membrane_sample": [],
                }
            row["membrane_rows"] += layer.mem_rows
            row["membrane_sample"].extend(membrane.get(id(layer), ()))
            if found is None:
                continue
            row["neurons"] += found["neurons"]
            row["spikes"] += found["spikes"]
            row["magnitude"] += found["magnitude"]
            for k, v in found["synops_by_input"].items():
                row["synops_by_input"][k] += v
            row["synops"] += found["synops"]
            row["timesteps"] = max(row["timesteps"], found["timesteps"])
            row["forwards"] = max(row["forwards"], found["forwards"])
            row["neuron_steps"] += found["neuron_steps"]
            if found["synops"] > 0 or found.get("consumed"):
                row["fanout"] = "exact"
        seconds = self.timestep_ms / 1000.0
        for row in rows.values():
            rate = row["spikes"] / row["neuron_steps"] if row["neuron_steps"] else None
            row["firing_rate"] = rate
            row["spike_rate_hz"] = rate / seconds if rate is not None else None
            del row["membrane_sample"][accumulate.MEMBRANE_SAMPLES * 4:]
        layers = list(rows.values())
        totals = summary["totals"]
        total_spikes = sum(r["spikes"] for r in layers)
        possible = sum(r["neuron_steps"] for r in layers)
        forwards = totals["forwards"]
        counts = {k: totals[k] for k in (
            "binary_weight_synops", "nonbinary_weight_macs", "encoding_macs",
            "encoding_macs_every_step", "graded_macs", "census_ac", "census_mac_bn",
            "census_spike_adds")}
        counts["ann_macs"] = totals["ann_macs"] / forwards if forwards else 0.0
        counts["adds_by_input"] = dict(totals["adds"])
        synops_by_input = dict(totals["synops"])
        estimate = energy.estimate(
            self.table, synops=synops_by_input, encoding_macs=counts["encoding_macs"],
            graded_macs=counts["graded_macs"], neuron_updates=possible,
            inferences=self.inferences, ann_macs=counts["ann_macs"])
        memory = summary["memory"]
        snapshot = {
            "model": self.name,
            "hardware": self.hardware,
            "timestep_ms": self.timestep_ms,
            "sample_every": self.sample_every,
            "forwards": self.forwards,
            "inferences": self.inferences,
            "sample_steps": self.sample_steps,
            "layers": layers,
            "totals": {
                "neurons": sum(r["neurons"] for r in layers),
                "spikes": total_spikes,
                "synops": sum(synops_by_input.values()),
                "synops_by_input": synops_by_input,
                "neuron_steps": possible,
                "firing_rate": total_spikes / possible if possible else None,
            },
            "counts": counts,
            "sparsity": 1.0 - total_spikes / possible if possible else None,
            "energy": estimate,
            "energy_memory": _memory_estimate(memory, self.inferences),
        }
        if detail:
            snapshot["consumers"] = summary["consumers"]
        return snapshot


def _memory_estimate(memory: dict | None, inferences: int) -> dict[str, Any]:
    """Lemaire's memory-aware estimate per inference, in mJ."""
    if memory is None or inferences <= 0:
        return {"snn_mj": None, "breakdown_mj": {}, "counts": {}}
    per = energy.PJ_TO_MJ / inferences
    return {"snn_mj": memory["total_pj"] * per,
            "breakdown_mj": {k[:-3]: v * per for k, v in memory.items()
                             if k.endswith("_pj") and k != "total_pj"},
            "counts": dict(memory["counts"]), "total_pj": memory["total_pj"]}


def monitor_model(model: Any, name: str | None = None, *, hardware: str | None = None,
                  meter_provider: Any = None, sample_every: int | None = None,
                  timestep_ms: float | None = None, max_layers: int | None = None) -> SpikeMonitor:
    """Attach a spike/energy monitor to ``model`` (a torch module with spiking layers).

    ``name`` is the ``model_name`` attribute, used as given (keep it bounded);
    without one the model is named like an auto-attached one (its class, ``#2``
    for a second live model of that class). Keywords override the
    ``OTEL_PYTHON_SPIKEFORMER_*`` settings. Returns the attached
    ``SpikeMonitor``; ``detach()`` it (or use it as a context manager).
    """
    overrides = {"monitor_sample_every": sample_every, "timestep_ms": timestep_ms,
                 "max_layers": max_layers}
    settings = load_settings({k: v for k, v in overrides.items() if v is not None})
    model = model_info.unwrap_model(model)
    if name is None:
        return attach(model, model_info.model_type(model), settings, hardware, meter_provider,
                      automatic=True)
    return attach(model, name, settings, hardware, meter_provider)


def attach(model: Any, name: str, settings: Settings, hardware: str | None,
           meter_provider: Any, automatic: bool = False) -> SpikeMonitor:
    """``monitor_model`` with resolved settings (the instrumentor's, for auto-attach).
    ``automatic``: ``name`` is a base that gets an ordinal (see ``naming``)."""
    from .instruments import instruments_for

    model = model_info.unwrap_model(model)
    instruments = instruments_for(meter_provider)
    label = instruments.names.assign(model, name, settings.max_models, ordinal=automatic)
    monitor = SpikeMonitor(model, label, settings, hardware)
    monitor._attach()
    instruments.add(monitor)
    if not monitor.layers:
        _LOG.warning("monitor_model(%s): no spiking layers found; nothing to count", label)
    return monitor
