"""How each library's spiking neuron lays out its tensors.

One row per library: where batch and time sit in the output, which attribute
holds the membrane potential after a forward, and how a new input sequence is
recognised. Everything here reads shapes and Python attributes only (metadata,
never tensor values), so it is safe on the forward path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import model_info

# Output layouts: leading dimensions that are batch (B) and time (T).
BT = "bt"  # (B, T, ...): sinabs IAF/LIF, the seed kit's LifNeuron
TB = "tb"  # (T, B, ...): spikingjelly step_mode='m'
B = "b"  # (B, ...), one timestep per call: spikingjelly step_mode='s', snntorch
SQUEEZE = "squeeze"  # (B*T, ...): sinabs IAFSqueeze/LIFSqueeze


@dataclass(frozen=True)
class NeuronKind:
    family: str
    layout: str
    state: str  # attribute with the membrane potential after a forward
    # True: every forward is a whole sequence (multi-step neurons).
    # False: single-step neurons; a sequence starts when the state object
    # differs from the one the previous forward left (reset or new tensor).
    forward_is_sequence: bool
    state_arg: int | None = None  # positional index of an explicit state argument
    state_kwarg: str | None = None


# Rows matched on the top-level package of the neuron's class.
_KINDS = {
    "sinabs": NeuronKind("sinabs", BT, "v_mem", True),
    "spikingjelly": NeuronKind("spikingjelly", B, "v", False),
    "snntorch": NeuronKind("snntorch", B, "mem", False, state_arg=1, state_kwarg="mem"),
}
# The seed kit (spikeformer.neurons.LifNeuron and friends) and any other class
# that model_info recognises: (B, T, ...) in and out, state in membrane_potential.
_DEFAULT = NeuronKind("spikeformer", BT, "membrane_potential", True)
_SQUEEZE = NeuronKind("sinabs", SQUEEZE, "v_mem", True)


def kind_of(module: Any) -> NeuronKind | None:
    """The row for a spiking neuron module, ``None`` for anything else."""
    if not model_info.is_spiking_neuron(module):
        return None
    klass = type(module)
    family = klass.__module__.split(".", 1)[0]
    if family == "sinabs":
        if getattr(module, "does_spike", True) is False:
            return None
        if any(k.__name__ == "SqueezeMixin" for k in klass.__mro__):
            return _SQUEEZE
    return _KINDS.get(family, _DEFAULT)


def layout_of(kind: NeuronKind, module: Any) -> str:
    if kind.family == "spikingjelly":
        return TB if getattr(module, "step_mode", "s") == "m" else B
    return kind.layout


def batch_time(layout: str, module: Any, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(batch, timesteps, leading dims to reduce) from an output shape."""
    if layout == SQUEEZE:
        rows = shape[0] if shape else 1
        steps = int(getattr(module, "num_timesteps", -1) or -1)
        if steps <= 0:
            batch = int(getattr(module, "batch_size", -1) or -1)
            steps = rows // batch if batch > 0 else 1
        steps = max(1, steps)
        return max(1, rows // steps), steps, 1
    if layout == BT and len(shape) >= 3:
        return shape[0], shape[1], 2
    if layout == TB and len(shape) >= 3:
        return shape[1], shape[0], 2
    return (shape[0] if shape else 1), 1, 1


def spikes_of(output: Any) -> Any:
    """The spike tensor of a neuron's output (snntorch returns ``(spk, mem)``)."""
    if isinstance(output, (tuple, list)):
        return output[0] if output else None
    return output


def state_in_call(kind: NeuronKind, module: Any, args: tuple, kwargs: dict) -> Any:
    """The state a call starts from: an explicit argument, else the module's."""
    if kind.state_arg is not None and len(args) > kind.state_arg:
        if args[kind.state_arg] is not None:
            return args[kind.state_arg]
    if kind.state_kwarg and kwargs.get(kind.state_kwarg) is not None:
        return kwargs[kind.state_kwarg]
    return getattr(module, kind.state, None)
