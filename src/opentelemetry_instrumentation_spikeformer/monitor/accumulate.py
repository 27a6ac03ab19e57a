"""What a monitored model's forwards are, layer by layer, apart from the counts.

``Sequencer`` decides which input sequences are monitored (one in
``sample_every``) and counts inferences; ``LayerState`` is one spiking layer:
its name and rule, the lead layer's sequence detection for single-step neurons,
and a small on-device ring buffer of membrane values. The counting itself
(events, synaptic operations) is ``synops.Topology``'s, on the device; nothing
here reads a tensor's values.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..core.errors import log_internal_error
from . import neurons

MEMBRANE_SAMPLES = 16  # membrane values copied per sampled forward and layer
MEMBRANE_ROWS = 4  # ring buffer depth: forwards sampled between two collections
_SPREAD = 7919  # prime: rotates the strided sample across neurons forward to forward


class Sequencer:
    """Monitors one input sequence in ``sample_every`` and counts what it saw."""

    def __init__(self, sample_every: int) -> None:
        self.sample_every = sample_every
        self.sequences = 0
        self.active = True
        self.lead_per_forward = True  # the lead layer's every forward is a sequence
        # this forward is not counted (torch.compile, a torch.func transform): the
        # lead layer's hooks return at once
        self.uncounted = False
        self._started = False
        self.reset()

    def reset(self) -> None:
        self.inferences = 0  # samples that started a sequence
        self.forwards = 0  # monitored forwards
        self.sample_steps = 0  # batch x timesteps of those forwards

    def begin(self) -> None:
        """A new input sequence starts."""
        self.sequences += 1
        self.active = (self.sequences - 1) % self.sample_every == 0
        self._started = True

    def count_lead(self, batch: int, steps: int) -> None:
        self.forwards += 1
        self.sample_steps += batch * steps
        if self._started:
            self._started = False
            self.inferences += batch


class LayerState:
    """One spiking layer: what it is, and its membrane samples."""

    def __init__(self, name: str, module: Any, rule: neurons.NeuronRule, label: str,
                 neuron_type: str, sequencer: Sequencer) -> None:
        self.name = name
        self.module = weakref.ref(module)
        self.rule = rule
        self.label = label
        self.neuron_type = neuron_type
        self.sequencer = sequencer
        self.output = rule.output_kind(module)  # read once, off the forward path
        self.role = rule.role
        self.last_state: Any = None
        self.is_lead = False
        self.reset()

    def reset(self) -> None:
        self.mem_buf: Any = None
        self.mem_len = [0] * MEMBRANE_ROWS
        self.mem_rows = 0
        self._mem_turn = 0

    # -- the lead layer of single-step models -----------------------------------
    def pre_hook(self, module: Any, args: tuple, kwargs: dict | None = None) -> None:
        """Does this call start a new sequence? (state reset or a new state object)
        ``kwargs`` is missing when torch calls a hook removed during this call.
        Not in a forward that is not counted (torch.compile, a torch.func
        transform): traced, Dynamo would guard on our state and recompile at
        each sequence."""
        if self.sequencer.uncounted:
            return None
        try:
            state = neurons.state_in_call(self.rule, module, args, kwargs or {})
            if state is None or state is not self.last_state:
                self.sequencer.begin()
        except Exception:
            log_internal_error("spike monitor pre-hook")
        return None

    def hook(self, module: Any, _args: tuple, _output: Any) -> None:
        if self.sequencer.uncounted:
            return
        self.last_state = getattr(module, self.rule.state, None) if self.rule.state else None

    # -- membrane samples -------------------------------------------------------
    def sample_membrane(self) -> None:
        """Copy up to MEMBRANE_SAMPLES values of the state the last forward left."""
        module = self.module()
        attr = self.rule.state
        state = getattr(module, attr, None) if module is not None and attr else None
        if not hasattr(state, "detach"):
            return  # no tensor (spikingjelly keeps a float until the first step)
        import torch

        flat = state.detach().reshape(-1)
        total = flat.numel()
        if total == 0:
            return
        self._mem_turn += 1
        stride = max(1, total // MEMBRANE_SAMPLES)
        offset = (self._mem_turn * _SPREAD) % stride
        taken = min(MEMBRANE_SAMPLES, (total - offset + stride - 1) // stride)
        if self.mem_buf is None:
            with torch.inference_mode(False):
                self.mem_buf = torch.zeros((MEMBRANE_ROWS, MEMBRANE_SAMPLES),
                                           dtype=torch.float32, device=flat.device)
        row = self.mem_rows % MEMBRANE_ROWS
        self.mem_buf[row, :taken].copy_(flat[offset::stride][:taken])
        self.mem_len[row] = taken
        self.mem_rows += 1

    def latest_membrane(self) -> Any:
        """View of the membrane values of the latest sampled forward, or ``None``."""
        if self.mem_buf is None or not self.mem_rows:
            return None
        row = (self.mem_rows - 1) % MEMBRANE_ROWS
        return self.mem_buf[row, : self.mem_len[row]]
