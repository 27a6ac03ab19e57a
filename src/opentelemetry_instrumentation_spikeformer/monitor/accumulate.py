"""Forward hooks that accumulate spikes on the model's device.

Per spiking layer and forward: one reduction of the spike tensor over batch
and time into a per-neuron count tensor (kept for exact fan-out weighting at
read time), a handful of shape-derived Python integers, and a strided copy of
a few membrane values into a small ring buffer. No ``.item()``, ``.cpu()``,
``.tolist()`` or branching on tensor values: nothing here waits for the device.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

from ..telemetry import log_internal_error
from . import neurons

if TYPE_CHECKING:  # pragma: no cover
    from .spike_monitor import SpikeMonitor

MEMBRANE_SAMPLES = 16  # membrane values copied per monitored forward and layer
MEMBRANE_ROWS = 4  # ring buffer depth (forwards kept between two collections)
_SPREAD = 7919  # prime: rotates the strided sample across neurons forward to forward


class LayerState:
    """Counts for one spiking layer since attach (or the last reset)."""

    def __init__(self, monitor: "SpikeMonitor", name: str, module: Any,
                 kind: neurons.NeuronKind, label: str, neuron_type: str) -> None:
        self.monitor = monitor
        self.name = name
        self.module = weakref.ref(module)
        self.kind = kind
        self.label = label
        self.neuron_type = neuron_type
        self.last_state: Any = None
        self.is_lead = False
        self.reset()

    def reset(self) -> None:
        self.counts: dict[tuple[int, ...], Any] = {}
        self.forwards = 0
        self.steps = 0
        self.sample_steps = 0
        self.neuron_steps = 0
        self.neurons = 0
        self.mem_buf: Any = None
        self.mem_len = [0] * MEMBRANE_ROWS
        self.mem_rows = 0

    # -- hooks ------------------------------------------------------------
    def pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        """On the first spiking layer only: does this call start a new sequence?"""
        try:
            kind = self.kind
            if kind.forward_is_sequence:
                self.monitor._begin_sequence()
                return None
            state = neurons.state_in_call(kind, module, args, kwargs)
            if state is None or state is not self.last_state:
                self.monitor._begin_sequence()
        except Exception:
            log_internal_error("spike monitor pre-hook")
        return None

    def hook(self, module: Any, _args: tuple, output: Any) -> None:
        try:
            self._observe(module, output)
        except Exception:
            log_internal_error("spike monitor hook")

    def _observe(self, module: Any, output: Any) -> None:
        kind = self.kind
        if not kind.forward_is_sequence:
            self.last_state = getattr(module, kind.state, None)
        monitor = self.monitor
        if not monitor.active:
            return
        spikes = neurons.spikes_of(output)
        shape = getattr(spikes, "shape", None)
        if shape is None:
            return
        shape = tuple(shape)
        batch, steps, lead = neurons.batch_time(neurons.layout_of(kind, module), module, shape)
        neuron_shape = shape[lead:]
        x = spikes.detach()
        counts = self.counts.get(neuron_shape)
        if counts is None:
            counts = self.counts[neuron_shape] = monitor._zeros(neuron_shape, x.device)
        rows = batch * steps
        if x.dtype in monitor._blas_dtypes and rows > 1 and x.is_contiguous():
            # ones(1, rows) @ spikes(rows, neurons): a BLAS GEMV reads the spikes
            # once and is exact for integer counts below 2**24 per neuron.
            counts.add_(monitor._mm(monitor._ones(rows, x), x.view(rows, -1)).view(neuron_shape))
        elif x.dtype in monitor._low_precision:
            counts.add_(x.sum(dim=(0, 1) if lead == 2 else 0, dtype=monitor._f32))
        else:
            counts.add_(x.sum(dim=(0, 1) if lead == 2 else 0))
        size = math.prod(neuron_shape)
        self.forwards += 1
        self.steps += steps
        self.sample_steps += batch * steps
        self.neuron_steps += size * batch * steps
        self.neurons = size
        if self.is_lead:
            monitor._count_lead(batch, steps)
        self._sample_membrane(module)

    def _sample_membrane(self, module: Any) -> None:
        state = getattr(module, self.kind.state, None)
        if not hasattr(state, "detach"):
            return  # not a tensor yet (spikingjelly keeps a float until the first step)
        flat = state.detach().reshape(-1)
        total = flat.numel()
        if total == 0:
            return
        stride = max(1, total // MEMBRANE_SAMPLES)
        offset = (self.forwards * _SPREAD) % stride
        taken = min(MEMBRANE_SAMPLES, (total - offset + stride - 1) // stride)
        if self.mem_buf is None:
            self.mem_buf = self.monitor._zeros((MEMBRANE_ROWS, MEMBRANE_SAMPLES), flat.device,
                                               membrane=True)
        row = self.mem_rows % MEMBRANE_ROWS
        self.mem_buf[row, :taken].copy_(flat[offset::stride][:taken])
        self.mem_len[row] = taken
        self.mem_rows += 1

    # -- read side ----------------------------------------------------------
    def latest_membrane(self) -> Any:
        """View of the membrane values of the latest monitored forward, or ``None``."""
        if self.mem_buf is None or not self.mem_rows:
            return None
        row = (self.mem_rows - 1) % MEMBRANE_ROWS
        return self.mem_buf[row, : self.mem_len[row]]
