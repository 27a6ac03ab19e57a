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

# Where batch (B) and time (T) sit in a module's output.
BT = "bt"  # (B, T, ...): sinabs IAF/LIF, the Spikeformer kit's LifNeuron
TB = "tb"  # (T, B, ...): multi-step
B = "b"  # (B, ...), one timestep per call
SQUEEZE = "squeeze"  # (B*T, ...): sinabs IAFSqueeze/LIFSqueeze
STEP_MODE = "step_mode"  # spikingjelly: TB when ``module.step_mode == 'm'``, else B
T_ONLY = "t"  # (T, ...) without a batch dim: sinabs Img2SpikeLayer / Sig2SpikeLayer
LAYOUTS = (BT, TB, B, SQUEEZE, STEP_MODE, T_ONLY)

# What one output element holds. The monitor counts events (non-zero elements;
# for COUNT the value: a multi-spike of 2 is two events) and, for every kind but
# BINARY and COUNT, the magnitude sum(|x|) apart.
BINARY = "binary"  # 0/1
SIGNED = "signed"  # -1/0/1 (ternary spikes)
COUNT = "count"  # spike counts >= 0 per step (multi-spike neurons)
SCALED = "scaled"  # non-zeros are spikes with a real amplitude (k * threshold, d_k)
GRADED = "graded"  # real values (time-differential increments, analog outputs)
OUTPUTS = (BINARY, SIGNED, COUNT, SCALED, GRADED)
EVENT_OUTPUTS = (BINARY, SIGNED, COUNT)  # an event needs no multiplication at a synapse

# What a matched module is to the monitor.
NEURON = "neuron"  # emits spikes
ENCODER = "encoder"  # turns real values into spikes
OPERATOR = "operator"  # ann2snn time-differential operator: emits graded increments
CONSUMER = "consumer"  # opaque weight layer (TDLinear): charged like Linear/Conv, not traced
ROUTE = "route"  # opaque module that only moves or sums events (sinabs SumPool2d)
IGNORE = "ignore"  # looks like a neuron but emits no spikes (ExpLeak, NonSpiking*)
ROLES = (NEURON, ENCODER, OPERATOR, CONSUMER, ROUTE, IGNORE)
SOURCES = (NEURON, ENCODER, OPERATOR)  # roles whose output the monitor counts

# How an opaque consumer (or an operator that also consumes events) charges its
# tensor inputs: like the ANN op it stands for.
CONSUMES = ("linear", "conv", "mha", "sdpa", "ewise", "matmul")


@dataclass(frozen=True)
class NeuronRule:
    """One family of modules: instances of a class whose MRO contains a class
    named ``base`` (rules are tried in order, the first match wins)."""

    base: str
    layout: str
    state: str | None  # attribute holding the membrane potential after a forward
    # True: every forward is a whole sequence. False: single-step neurons, where
    # a sequence starts when the state object differs from the one the previous
    # forward left (reset or new tensor). Multi-step layouts are always True.
    forward_is_sequence: bool
    output: str = BINARY
    state_arg: int | None = None  # positional index of an explicit state argument
    state_kwarg: str | None = None
    # Per-instance check: an instance of ``base`` that is not a spiking neuron
    # (sinabs' ExpLeak integrates but never spikes).
    spiking: Callable[[Any], bool] | None = None
    role: str = NEURON
    # Per-instance output kind / layout when the configuration decides
    # (spikingjelly LIAFNode: graded in 's', binary in 'm').
    output_of: Callable[[Any], str] | None = None
    layout_fn: Callable[[Any], str] | None = None
    # The method the model calls: "forward" (module hooks) or e.g. "encode"
    # (spikingjelly's Qwen2 encoders are called as ``encoder.encode(x)``); a
    # method other than forward is tapped for sources only.
    entry: str = "forward"
    consumes: str | None = None  # one of CONSUMES for consumers and consuming operators
    # Leaky neurons pay a multiplication per neuron update (Lemaire's model).
    leaky: bool | Callable[[Any], bool] = False

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS or self.output not in OUTPUTS or self.role not in ROLES \
                or (self.consumes is not None and self.consumes not in CONSUMES):
            raise ValueError(f"NeuronRule {self.base}: bad layout, output, role or consumes")
        if self.entry != "forward" and not self.is_source:
            raise ValueError(f"NeuronRule {self.base}: entry {self.entry!r} on a non-source")

    @property
    def is_source(self) -> bool:
        return self.role in SOURCES

    def layout_of(self, module: Any) -> str:
        if self.layout_fn is not None:
            return self.layout_fn(module)
        if self.layout == STEP_MODE:
            return TB if getattr(module, "step_mode", "s") == "m" else B
        return self.layout

    def output_kind(self, module: Any) -> str:
        return self.output_of(module) if self.output_of is not None else self.output

    def sequence_per_forward(self, module: Any) -> bool:
        """Whether each call is a whole input sequence (one inference per sample)."""
        return self.forward_is_sequence or self.layout_of(module) != B

    def is_leaky(self, module: Any) -> bool:
        return bool(self.leaky(module)) if callable(self.leaky) else self.leaky


@dataclass(frozen=True)
class Framework:
    """Everything the plugin knows about one library or toolchain."""

    name: str
    packages: tuple[str, ...]  # top-level packages whose import loads this extension
    targets: tuple[Target, ...] = ()  # patch rows
    neurons: tuple[NeuronRule, ...] = ()  # neurons, encoders, operators, opaque consumers
    hardware: tuple[str, ...] = ()  # hardware label values this library can target
    # The torch module inside what a converter returns (sinabs' Network), or None.
    unwrap: Callable[[Any], Any] | None = None
    metrics: tuple[MetricSpec, ...] = ()  # instruments only this extension records
    tested_with: str = ""

    def rule_for(self, klass: type) -> NeuronRule | None:
        """The first rule whose ``base`` names a class of ``klass``'s MRO (within
        this framework's packages), whatever its role."""
        names = {k.__name__ for k in klass.__mro__
                 if k.__module__.partition(".")[0] in self.packages}
        return next((rule for rule in self.neurons if rule.base in names), None)

    def neuron_rule(self, klass: type) -> NeuronRule | None:
        """``rule_for`` when the rule is an event source (neuron, encoder, operator)."""
        rule = self.rule_for(klass)
        return rule if rule is not None and rule.is_source else None
