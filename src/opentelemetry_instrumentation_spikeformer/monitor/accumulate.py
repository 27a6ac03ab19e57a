"""Forward hooks that accumulate spikes on the model's device.

Per spiking layer and forward: one reduction of the spike tensor over batch
and time into a per-neuron count tensor (kept for exact fan-out weighting at
read time), a handful of shape-derived Python integers, and a strided copy of
a few membrane values into a small ring buffer. No ``.item()``, ``.cpu()``,
``.tolist()`` or branching on tensor values: nothing here waits for the device.

``Sequencer`` decides which forwards are monitored and counts inferences;
``DeviceMath`` owns the tensors; ``LayerState`` is one layer's hooks and
counts. The monitor composes them.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from ..core.errors import log_internal_error
from . import neurons

MEMBRANE_SAMPLES = 16  # membrane values copied per monitored forward and layer
MEMBRANE_ROWS = 4  # ring buffer depth (forwards kept between two collections)
_SPREAD = 7919  # prime: rotates the strided sample across neurons forward to forward


class Sequencer:
    """Monitors one input sequence in ``sample_every`` and counts what it saw."""

    def __init__(self, sample_every: int) -> None:
        self.sample_every = sample_every
        self.sequences = 0
        self.active = True
        self._started = False
        self.reset()

    def reset(self) -> None:
        self.inferences = 0  # samples that started a sequence
        self.forwards = 0  # monitored forwards of the lead layer
        self.sample_steps = 0  # batch x timesteps of those forwards

    def begin(self) -> None:
        """A new input sequence starts (called from the lead layer's pre-hook)."""
        self.sequences += 1
        self.active = (self.sequences - 1) % self.sample_every == 0
        self._started = True

    def count_lead(self, batch: int, steps: int) -> None:
        self.forwards += 1
        self.sample_steps += batch * steps
        if self._started:
            self._started = False
            self.inferences += batch


class DeviceMath:
    """Count and sample buffers on the model's device, made without autograd."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self.f32 = torch.float32
        self.low_precision = (torch.float16, torch.bfloat16)
        self.blas_dtypes = (torch.float32, torch.float64)
        self.mm = torch.mm
        self._ones: dict[tuple[int, Any, Any], Any] = {}

    def ones(self, rows: int, like: Any) -> Any:
        """A (1, rows) row of ones on ``like``'s device and dtype, made once."""
        key = (rows, like.device, like.dtype)
        found = self._ones.get(key)
        if found is None:
            with self._torch.inference_mode(False):
                found = self._ones[key] = self._torch.ones(
                    (1, rows), dtype=like.dtype, device=like.device)
        return found

    def zeros(self, shape: tuple[int, ...], device: Any, membrane: bool = False) -> Any:
        torch = self._torch
        exact = not membrane and getattr(device, "type", "") != "mps"
        with torch.inference_mode(False):
            return torch.zeros(shape, dtype=torch.float64 if exact else torch.float32,
                               device=device)

    def add_counts(self, counts: Any, x: Any, rows: int, lead: int) -> None:
        """``counts += x`` summed over its ``lead`` leading (batch/time) dims."""
        if x.dtype in self.blas_dtypes and rows > 1 and x.is_contiguous():
            # ones(1, rows) @ spikes(rows, neurons): a BLAS GEMV reads the spikes
            # once and is exact for integer counts below 2**24 per neuron.
            counts.add_(self.mm(self.ones(rows, x), x.view(rows, -1)).view(counts.shape))
        elif x.dtype in self.low_precision:
            counts.add_(x.sum(dim=(0, 1) if lead == 2 else 0, dtype=self.f32))
        else:
            counts.add_(x.sum(dim=(0, 1) if lead == 2 else 0))


class LayerState:
    """One spiking layer's hooks and its counts since attach (or the last reset)."""

    def __init__(self, name: str, module: Any, rule: neurons.NeuronRule, label: str,
                 neuron_type: str, sequencer: Sequencer, math_: DeviceMath) -> None:
        self.name = name
        self.module = weakref.ref(module)
        self.rule = rule
        self.label = label
        self.neuron_type = neuron_type
        self.sequencer = sequencer
        self.math = math_
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
            rule = self.rule
            if rule.forward_is_sequence:
                self.sequencer.begin()
                return None
            state = neurons.state_in_call(rule, module, args, kwargs)
            if state is None or state is not self.last_state:
                self.sequencer.begin()
        except Exception:
            log_internal_error("spike monitor pre-hook")
        return None

    def hook(self, module: Any, _args: tuple, output: Any) -> None:
        try:
            self._observe(module, output)
        except Exception:
            log_internal_error("spike monitor hook")

    def _observe(self, module: Any, output: Any) -> None:
        rule = self.rule
        if not rule.forward_is_sequence:
            self.last_state = getattr(module, rule.state, None)
        if not self.sequencer.active:
            return
        spikes = neurons.spikes_of(output)
        shape = getattr(spikes, "shape", None)
        if shape is None:
            return
        shape = tuple(shape)
        batch, steps, lead = neurons.batch_time(rule.layout_of(module), module, shape)
        neuron_shape = shape[lead:]
        x = spikes.detach()
        counts = self.counts.get(neuron_shape)
        if counts is None:
            counts = self.counts[neuron_shape] = self.math.zeros(neuron_shape, x.device)
        self.math.add_counts(counts, x, batch * steps, lead)
        size = math.prod(neuron_shape)
        self.forwards += 1
        self.steps += steps
        self.sample_steps += batch * steps
        self.neuron_steps += size * batch * steps
        self.neurons = size
        if self.is_lead:
            self.sequencer.count_lead(batch, steps)
        self._sample_membrane(module)

    def _sample_membrane(self, module: Any) -> None:
        state = getattr(module, self.rule.state, None)
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
            self.mem_buf = self.math.zeros((MEMBRANE_ROWS, MEMBRANE_SAMPLES), flat.device,
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
