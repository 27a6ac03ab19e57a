"""``SpikeMonitor``: hooks on a model's spiking layers, read once per collection.

The forward path only accumulates on the device (see ``accumulate``);
``read()`` is the one place that moves data to the host, in one transfer per
device for all layers.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from ..core import attributes as a
from ..core import model_info
from ..core.settings import Settings, load_settings
from . import accumulate, energy, hooks, neurons
from .synops import EXACT, Topology

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
        self.math = accumulate.DeviceMath()
        self.attached = False
        self.retired = False  # detached by uninstrument(): counts frozen, still reported
        self._resets = 0
        self._handles: list[Any] = []
        self._lead_handle: Any = None
        self._read_cache: dict[Any, tuple[Any, Any, Any]] = {}
        self.layers: list[accumulate.LayerState] = []
        self._layer_of: dict[int, accumulate.LayerState] = {}
        self._collect_layers(model)
        self.topology = Topology(model, self._layer_of)

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
                                          self.sequencer, self.math)
            self.layers.append(layer)
            self._layer_of[id(module)] = layer

    # -- attach / detach ------------------------------------------------------
    def _attach(self) -> "SpikeMonitor":
        model = self._model()
        if model is None or self.attached:
            return self
        try:
            for layer in self.layers:
                module = layer.module()
                if module is not None:
                    self._handles.append(hooks.forward_hook(module, layer.hook))
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
        if module is not None:
            self._lead_handle = hooks.forward_pre_hook(module, layer.pre_hook, with_kwargs=True)

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
        self._read_cache.clear()
        self._resets += 1

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever ``read()`` would return something new (a monitored
        forward, a reset): a collection re-reads only monitors whose version moved,
        so idle models, and dropped ones the garbage collector has not reached
        yet, cost no device work."""
        return self._resets, sum(layer.forwards for layer in self.layers)

    # -- read ---------------------------------------------------------------
    def _finish_topology(self) -> None:
        topo = self.topology
        if topo.done:
            return
        topo.finalize()
        if topo.done and topo.order:
            lead = self._layer_of.get(topo.order[0])
            if lead is not None and not lead.is_lead and self.attached:
                self._set_lead(lead)

    def read(self) -> dict[str, Any]:
        """Snapshot in plain Python: per-layer counts, totals, sparsity, energy.

        The only place that transfers from the device (one transfer per device).
        """
        import torch

        self._finish_topology()
        by_device: dict[Any, list[tuple[accumulate.LayerState, tuple[int, ...], Any]]] = {}
        for layer in self.layers:
            for shape, counts in list(layer.counts.items()):
                by_device.setdefault(counts.device, []).append((layer, shape, counts))
        spikes: dict[int, float] = {}
        synops: dict[int, float] = {}
        quality: dict[int, str] = {}
        membrane: dict[int, list[float]] = {}
        with torch.inference_mode(False), torch.no_grad():
            for device, entries in by_device.items():
                self._read_device(device, entries, spikes, synops, quality, membrane)
        return self._snapshot(spikes, synops, quality, membrane)

    def _read_device(self, device, entries, spikes, synops, quality, membrane) -> None:
        import torch

        key = tuple((id(layer), shape) for layer, shape, _ in entries)
        cached = self._read_cache.get(device)
        if cached is None or cached[0] != key:
            fans, labels = [], []
            for layer, shape, _ in entries:
                fan, how = self.topology.fanout(layer.module(), shape, device)
                fans.append(fan.reshape(-1))
                labels.append(how)
            sizes = torch.tensor([fan.numel() for fan in fans], device=device)
            seg = torch.repeat_interleave(torch.arange(len(entries), device=device), sizes)
            cached = self._read_cache[device] = (key, (torch.cat(fans), seg), labels)
        _, (fan, seg), labels = cached
        flat = torch.cat([counts.reshape(-1) for _, _, counts in entries]).to(fan.dtype)
        count = len(entries)
        per_entry = torch.zeros(2, count, dtype=fan.dtype, device=device)
        per_entry[0].index_add_(0, seg, flat)
        per_entry[1].index_add_(0, seg, flat * fan)
        parts = [per_entry.reshape(-1)]
        mem_layers, mem_values = [], []
        for layer in {id(layer): layer for layer, _, _ in entries}.values():
            values = layer.latest_membrane()
            if values is not None and values.device == fan.device:
                mem_values.append(values)
                mem_layers.append((layer, values.numel()))
        if mem_values:
            parts.append(torch.cat(mem_values).to(fan.dtype))
        host = torch.cat(parts).cpu().tolist()  # the one device -> host transfer
        for i, (layer, _, _) in enumerate(entries):
            key_id = id(layer)
            spikes[key_id] = spikes.get(key_id, 0.0) + host[i]
            synops[key_id] = synops.get(key_id, 0.0) + host[count + i]
            if labels[i] != EXACT or key_id not in quality:
                quality[key_id] = labels[i]
        at = 2 * count
        for layer, size in mem_layers:
            membrane[id(layer)] = host[at:at + size]
            at += size

    def _snapshot(self, spikes, synops, quality, membrane) -> dict[str, Any]:
        rows: dict[str, dict[str, Any]] = {}
        for layer in self.layers:
            key = id(layer)
            row = rows.get(layer.label)
            if row is None:
                row = rows[layer.label] = {
                    "layer": layer.label, "neuron_type": layer.neuron_type, "neurons": 0,
                    "spikes": 0.0, "synops": 0.0, "timesteps": 0,
                    "forwards": 0, "neuron_steps": 0, "fanout": EXACT,
                    "membrane_rows": 0, "membrane_sample": [],
                }
            row["neurons"] += layer.neurons
            row["spikes"] += spikes.get(key, 0.0)
            row["synops"] += synops.get(key, 0.0)
            row["timesteps"] = max(row["timesteps"], layer.steps)
            row["forwards"] = max(row["forwards"], layer.forwards)
            row["neuron_steps"] += layer.neuron_steps
            row["membrane_rows"] += layer.mem_rows
            row["membrane_sample"].extend(membrane.get(key, ()))
            if quality.get(key, EXACT) != EXACT and row["fanout"] == EXACT:
                row["fanout"] = quality[key]
        seconds = self.timestep_ms / 1000.0
        for row in rows.values():
            rate = row["spikes"] / row["neuron_steps"] if row["neuron_steps"] else None
            row["firing_rate"] = rate
            row["spike_rate_hz"] = rate / seconds if rate is not None else None
            del row["membrane_sample"][accumulate.MEMBRANE_SAMPLES * 4:]
        layers = list(rows.values())
        total_spikes = sum(r["spikes"] for r in layers)
        total_synops = sum(r["synops"] for r in layers)
        possible = sum(r["neuron_steps"] for r in layers)
        topo = self.topology
        estimate = energy.estimate(
            self.table,
            synops=total_synops,
            encoding_macs=topo.encoding_macs * self.sample_steps,
            neuron_updates=possible,
            inferences=self.inferences,
            ann_macs=topo.ann_macs,
        )
        sparsity = 1.0 - total_spikes / possible if possible else None
        return {
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
                "synops": total_synops,
                "neuron_steps": possible,
                "firing_rate": total_spikes / possible if possible else None,
            },
            "sparsity": sparsity,
            "energy": estimate,
        }


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
