"""What a framework extension declares: ``Framework`` and its ``NeuronRule`` rows.

An extension is one module that defines ``FRAMEWORK = Framework(...)`` and
imports none of its library: the registry imports it when (and if) the
library is imported, and the core reads the declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.metrics import MetricSpec
from ..core.targets import Target

# Where batch (B) and time (T) sit in a neuron's output.
BT = "bt"  # (B, T, ...): sinabs IAF/LIF, the Spikeformer kit's LifNeuron
TB = "tb"  # (T, B, ...): multi-step
B = "b"  # (B, ...), one timestep per call
SQUEEZE = "squeeze"  # (B*T, ...): sinabs IAFSqueeze/LIFSqueeze
STEP_MODE = "step_mode"  # spikingjelly: TB when ``module.step_mode == 'm'``, else B
LAYOUTS = (BT, TB, B, SQUEEZE, STEP_MODE)

# What one output element holds.
BINARY = "binary"  # 0/1 (or spike counts >= 0 for multi-spike neurons)
SIGNED = "signed"  # -1/0/1
GRADED = "graded"  # real values
OUTPUTS = (BINARY, SIGNED, GRADED)


@dataclass(frozen=True)
class NeuronRule:
    """One family of spiking neurons: instances of a class whose MRO contains a
    class named ``base`` (rules are tried in order, the first match wins)."""

    base: str
    layout: str
    state: str  # attribute holding the membrane potential after a forward
    # True: every forward is a whole sequence (multi-step neurons). False:
    # single-step neurons, where a sequence starts when the state object
    # differs from the one the previous forward left (reset or new tensor).
    forward_is_sequence: bool
    output: str = BINARY
    state_arg: int | None = None  # positional index of an explicit state argument
    state_kwarg: str | None = None
    # Per-instance check: an instance of ``base`` that is not a spiking neuron
    # (sinabs' ExpLeak integrates but never spikes).
    spiking: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS or self.output not in OUTPUTS:
            raise ValueError(f"NeuronRule {self.base}: bad layout or output")

    def layout_of(self, module: Any) -> str:
        if self.layout == STEP_MODE:
            return TB if getattr(module, "step_mode", "s") == "m" else B
        return self.layout


@dataclass(frozen=True)
class Framework:
    """Everything the plugin knows about one library or toolchain."""

    name: str
    packages: tuple[str, ...]  # top-level packages whose import loads this extension
    targets: tuple[Target, ...] = ()  # patch rows
    neurons: tuple[NeuronRule, ...] = ()  # spiking neuron classes, for the monitor
    hardware: tuple[str, ...] = ()  # hardware label values this library can target
    # The torch module inside what a converter returns (sinabs' Network), or None.
    unwrap: Callable[[Any], Any] | None = None
    metrics: tuple[MetricSpec, ...] = ()  # instruments only this extension records
    tested_with: str = ""

    def neuron_rule(self, klass: type) -> NeuronRule | None:
        names = {k.__name__ for k in klass.__mro__
                 if k.__module__.partition(".")[0] in self.packages}
        return next((rule for rule in self.neurons if rule.base in names), None)
