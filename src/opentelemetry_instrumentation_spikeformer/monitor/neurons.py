"""Reading a spiking neuron's tensors, as its framework's ``NeuronRule`` says.

Everything here reads shapes and Python attributes only (metadata, never
tensor values), so it is safe on the forward path.
"""

from __future__ import annotations

from typing import Any

from ..frameworks import NeuronRule, module_rule, neuron_rule
from ..frameworks.base import BT, SQUEEZE, T_ONLY, TB

__all__ = ["NeuronRule", "batch_time", "kind_of", "rule_of", "spikes_of", "state_in_call"]


def kind_of(module: Any) -> NeuronRule | None:
    """The rule for a module that emits events (neuron, encoder, operator), else ``None``."""
    return neuron_rule(module)


def rule_of(module: Any) -> NeuronRule | None:
    """Any rule for ``module``: also opaque consumers, routes and ignored look-alikes."""
    return module_rule(module)


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
    if layout == TB and len(shape) >= 2:
        return shape[1], shape[0], 2
    if layout == T_ONLY:
        return 1, (shape[0] if shape else 1), 1
    return (shape[0] if shape else 1), 1, 1


def spikes_of(output: Any) -> Any:
    """The spike tensor of a neuron's output (snntorch returns ``(spk, mem)``)."""
    if isinstance(output, (tuple, list)):
        return output[0] if output else None
    return output


def state_in_call(rule: NeuronRule, module: Any, args: tuple, kwargs: dict) -> Any:
    """The state a call starts from: an explicit argument, else the module's."""
    if rule.state_arg is not None and len(args) > rule.state_arg:
        if args[rule.state_arg] is not None:
            return args[rule.state_arg]
    if rule.state_kwarg and kwargs.get(rule.state_kwarg) is not None:
        return kwargs[rule.state_kwarg]
    return getattr(module, rule.state, None)
