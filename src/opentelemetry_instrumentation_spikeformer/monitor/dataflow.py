"""One traced forward: where every event goes (the discovery pass).

A ``TorchDispatchMode`` sees each aten op of one forward of the monitored
model. Modules an extension's rule matches are opaque: a neuron's, encoder's or
operator's output becomes a *source* of events, an opaque weight module
(``TDLinear``) charges its inputs like the ANN op. From the sources on, every
tensor that only moves or adds events is tracked (views, copies, cat, pad,
index, sums, means, average pooling, scaling); max pooling and the product of
two tracked tensors start a *derived* source (the selected / coinciding
events). What consumes tracked tensors is recorded as a ``Consumer``:

* ``linear``: a weight op (aten ``convolution``, ``mm``, ``addmm``, ``bmm``,
  ``baddbmm``) or an opaque weight module with one tracked operand: one
  synaptic operation per (event, synapse it reaches);
* ``product``: a weight op with two tracked operands (spike @ spike):
  one accumulate per pair of events that meet;
* ``reduce``: a sum/mean/pooling of tracked values whose result reaches
  anything but a weight op (SDSA's ``(k*v).sum``, QKA's ``q.sum``): one add per
  event entering it (reductions that feed weight ops are folded into them);
* ``accumulate``: tracked values added into an untracked tensor (a dense
  residual stream): one add per event;
* ``census_add``: spike + spike (for the SimpleEnergyProfiler parity only).

Weight ops on untracked inputs are dense MACs: ``encoding`` when nothing
upstream spiked, ``graded`` after. Nothing here reads a tensor's values (no
host sync): value-dependent facts are kept as device tensors for ``read()``.
Only ops in module forward bodies are traced: other code's hooks (a profiler's,
SNNAnalyzer's) and our own run inside "hook windows" that the tracer skips.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..frameworks import base as fb
from . import census as cs
from . import hooks, neurons

# Categories of synaptic operations by what reaches the consumer.
SPIKES = "spikes"  # events as a source emitted them (binary, signed, counts), moved or max-pooled
SPIKE_SUMS = "spike_sums"  # events that went through a sum, mean or average pooling
GRADED = "graded"  # events with an amplitude (graded sources, scaled spikes): value x weight
CATEGORIES = (SPIKES, SPIKE_SUMS, GRADED)

_ORDER = {fb.BINARY: 0, fb.SIGNED: 1, fb.COUNT: 2, fb.SCALED: 3, fb.GRADED: 4}


def join(a: str, b: str) -> str:
    return a if _ORDER[a] >= _ORDER[b] else b


def category(values: str, summed: bool) -> str:
    if values in (fb.SCALED, fb.GRADED):
        return GRADED
    return SPIKE_SUMS if summed else SPIKES


@dataclass
class Ref:
    """A tracked tensor in a recorded op's arguments."""

    node: int


@dataclass
class Node:
    id: int
    kind: str  # source | derived | op
    shape: tuple
    values: str  # event kind (frameworks.base OUTPUTS)
    summed: bool = False  # went through an additive mix
    scope: str = ""
    func: Any = None
    args: Any = None
    kwargs: Any = None
    out_index: int | None = None
    structural: str = "as_is"  # as_is | add | scale | reduce | pool
    leaves: frozenset = frozenset()
    source: int | None = None
    name: str = ""  # a source's layer
    deps: tuple = ()
    capture: Any = None  # (weakref to module, call index): a module returns this tensor
    # A view of one source's output: (source node, size, stride, offset from the
    # source's storage offset, the source's stride); recomputed as one as_strided.
    view_of: tuple | None = None


@dataclass
class Consumer:
    id: int
    kind: str  # linear | product | reduce | accumulate | census_add
    op: str
    scope: str
    inputs: tuple  # node ids (two for a product)
    category: str
    values: str
    g: Any = None  # per-element synapse count of the input (linear), CPU (small integers:
    # exact in float32; the planner's replay runs in float64)
    dense_macs: float = 0.0  # the same op dense (the ANN's cost)
    seq: int = -1  # position among the forward's aten weight ops
    call: "ModuleCall | None" = None  # the nn.Linear / nn.Conv call the op ran in
    lead: tuple = ()  # first two dims of the op's input (does it still hold T?)


@dataclass
class MacOp:
    """A weight op on untracked inputs: dense multiply-accumulates."""

    macs: float
    encoding: bool  # computed from the model input only (nothing spiked upstream)
    steps: int = 1  # timesteps the input holds (for "once per static image")
    new_steps: Any = None  # device tensor: steps whose input is new and non-zero
    lead: tuple = ()  # first two dims of the op's input


@dataclass
class Source:
    index: int
    module: Any  # weakref.ref
    rule: fb.NeuronRule
    layout: str
    values: str
    shape: tuple
    batch: int
    steps: int
    lead: int


@dataclass
class ModuleCall:
    """An ``nn.Linear`` / ``nn.Conv*`` call (for Lemaire's per-module model)."""

    linear: bool
    in_shape: tuple
    out_shape: tuple = ()  # set when the call returns
    in_features: int = 0
    out_features: int = 0
    out_channels: int = 0
    groups: int = 1
    kernel: tuple = ()
    stride: tuple = ()
    weight_per_output: int = 0  # prod(weight.shape[1:])
    params: int = 0
    bias: bool = False
    steps: int = 1  # module.step_mode == 'm': x.shape[0]
    seqs: list = field(default_factory=list)


def _op(name: str) -> Any:
    import torch

    packet, overload = name.split(".")
    return getattr(getattr(torch.ops.aten, packet, None), overload, None)


# The aten ops the recorder tells apart, by what they do to events: one row per
# op name, each run on spikes by tests/test_monitor_op_table.py (the op seen, the
# events it passes on counted there). A view op (``func.is_view``: view, reshape,
# permute, slice, split, unfold, ...) always moves events as they are; an op in no
# row consumes them non-linearly (a sink).
WEIGHT_OPS = {"convolution.default": "conv", "mm.default": "mm", "addmm.default": "addmm",
              "bmm.default": "bmm", "baddbmm.default": "baddbmm"}
MOVE_OPS = (  # copies, gathers and repeats of events, not views
    "clone.default", "_to_copy.default", "cat.default", "stack.default",
    "constant_pad_nd.default", "index_select.default", "gather.default", "index.Tensor",
    "repeat.default", "flip.default", "roll.default", "pixel_shuffle.default",
    "pixel_unshuffle.default", "upsample_nearest2d.default", "_unsafe_view.default",
    "_unsafe_index.Tensor")  # (nearest upsampling, decomposed under inference_mode)
IDENTITY_OPS = ("clone.default", "detach.default", "_to_copy.default")  # same values:
# skipped when a leaf's program is run
RESHAPE_OPS = ("view.default", "_unsafe_view.default")  # run as reshape
REDUCE_OPS = ("sum.dim_IntList", "sum.default", "mean.dim", "mean.default")
POOL_OPS = {"avg_pool2d.default": 2, "avg_pool3d.default": 3,  # spatial dims;
            "_adaptive_avg_pool2d.default": -2, "_adaptive_avg_pool3d.default": -3}  # < 0: adaptive
MAXPOOL_OPS = ("max_pool2d_with_indices.default", "max_pool3d_with_indices.default")
ADD_OPS = ("add.Tensor", "add_.Tensor", "sub.Tensor", "sub_.Tensor")
MUL_OPS = ("mul.Tensor", "mul_.Tensor")  # of two spike tensors: their coincidences
NEG_OPS = ("neg.default",)  # of spikes: signed
SCALE_OPS = MUL_OPS + ("div.Tensor", "div_.Tensor", "mul.Scalar", "div.Scalar") + NEG_OPS
CUMSUM_OPS = ("cumsum.default",)


class Ops:
    """The tables above as aten op objects (built once, torch imported)."""

    def __init__(self) -> None:
        def ops(names: Any) -> set:
            return {o for o in (_op(n) for n in names) if o is not None}

        self.weight = {_op(n): kind for n, kind in WEIGHT_OPS.items()}
        self.copy = ops(MOVE_OPS)
        self.view_as_reshape = ops(RESHAPE_OPS)
        self.reduce = ops(REDUCE_OPS)
        self.pool = {_op(n): nd for n, nd in POOL_OPS.items()}
        self.pool.pop(None, None)
        self.maxpool = ops(MAXPOOL_OPS)
        self.add = ops(ADD_OPS)
        self.mul = ops(MUL_OPS)
        self.scale = ops(SCALE_OPS)
        self.neg = ops(NEG_OPS)
        self.cumsum = ops(CUMSUM_OPS)
        self.identity = ops(IDENTITY_OPS)


_OPS: Ops | None = None


def ops() -> Ops:
    global _OPS
    if _OPS is None:
        _OPS = Ops()
    return _OPS


def _aligned(module: Any, a: tuple, b: tuple) -> tuple:
    """Two operand shapes as spikingjelly's multi-step ``SNNMatrixOperator`` /
    ``SNNElementWiseProduct`` line them up: the shorter one gets dims after T."""
    a, b = tuple(a), tuple(b)
    if getattr(module, "step_mode", "s") == "m":
        n = max(len(a), len(b))
        a, b = (s[:1] + (1,) * (n - len(s)) + s[1:] for s in (a, b))
    return a, b


def make_tracer(graph: "Graph") -> Any:
    """The dispatch mode that feeds every aten op of the forward to ``graph``.
    What it computes itself is hidden from other modes (a profiler's); our own
    work while it is on (another monitor's plan building and counting) runs
    hidden from it (``synops._hidden``)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
    composite = torch._C.DispatchKey.CompositeImplicitAutograd
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key

    class Tracer(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            # Under inference_mode the mode sees composite ops (conv2d, linear,
            # flatten) before their decomposition: run that decomposition here,
            # the same ops as otherwise, each of them traced
            if torch.is_inference_mode_enabled() and has_kernel(func.name(), composite):
                with self:
                    out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
            out = func(*args, **kwargs)
            if graph.window == 0:
                try:
                    with torch._C._ExcludeDispatchKeyGuard(keys):
                        graph.census.record(func, args, out, graph)
                        if graph.opaque == 0:
                            graph.on_op(func, args, kwargs, out)
                except Exception as exc:  # never break the user's forward
                    graph.errors.append(f"{func}: {type(exc).__name__}: {exc}")
            return out

    return Tracer()


class Graph:
    """What one traced forward saw: nodes, consumers, dense MACs, module calls."""

    def __init__(self, root: Any, names: dict[int, str], outputs: dict[int, str]) -> None:
        self.names = names  # id(module) -> qualified name (the class's for the root)
        self.outputs = outputs  # id(module) -> output kind read at attach
        self.nodes: list[Node] = []
        self.ids: dict[int, int] = {}  # id(tensor) -> node id
        self.keep: list[Any] = []  # strong refs: ids are not reused during the trace
        self.post: set[int] = set()  # ids of untracked tensors downstream of spikes
        self.sources: list[Source] = []
        self.source_out: dict[int, Any] = {}  # source index -> this forward's output
        self.source_version: dict[int, int] = {}  # its version counter when it was returned
        self.source_keep: dict[int, int] = {}  # source node id -> its tensor in ``keep``
        self.consumers: list[Consumer] = []
        self.macs: list[MacOp] = []
        self.calls: list[ModuleCall] = []
        self.sinks: set[int] = set()  # nodes consumed by something non-linear
        self.reductions: list[tuple[int, int, str]] = []  # (input, output, scope)
        self.spike_adds: list[tuple[Any, Any]] = []
        self.errors: list[str] = []
        self.census = cs.Census()
        self.opaque = 0  # > 0 inside a matched module's forward
        self.window = 0  # > 0 while hooks (ours, other code's) run: not traced
        self.scopes: list[str] = []
        self.weight_seq = 0
        self._rules: dict[int, tuple[str, Any, fb.NeuronRule]] = {}
        self._calls_of: dict[int, int] = {}  # module calls seen (for captures)
        self._open_calls: list[ModuleCall | None] = []
        self._route_in: list[Any] = []
        # (pre sets self._fed for the outermost matched module: is its input
        # downstream of spikes; post_forward reads it)
        self._tapped: list[bool] = []
        self._handles: list[Any] = []
        for module in root.modules():
            rule = neurons.rule_of(module)
            if rule is not None:
                self._rules[id(module)] = (names[id(module)], module, rule)

    # -- hook windows around module forwards ---------------------------------
    def install(self, root: Any) -> None:
        """Hooks on every module (through ``hooks``: left out of pickles), one
        method tap per source the model calls by another name. Removed by
        ``uninstall`` at the end of the traced forward."""
        outer = set()  # modules inside a matched one: opaque, no hooks needed
        for _, module, _rule in self._rules.values():
            outer.update(id(m) for m in module.modules() if m is not module)
        add = self._handles.append
        for module in root.modules():
            if module is root or id(module) in outer:
                continue
            add(hooks.forward_pre_hook(module, self._open, prepend=True))
            add(hooks.forward_pre_hook(module, self._enter, with_kwargs=True))
            add(hooks.forward_hook(module, self._exit, prepend=True, always_call=True))
            add(hooks.forward_hook(module, self._close, always_call=True))
        for name, module, rule in self._rules.values():
            if rule.entry != "forward" and hasattr(module, rule.entry):
                add(hooks.method_tap(module, rule.entry, post=self._method_exit,
                                     pre=self._method_enter))

    def uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _open(self, _module, _args) -> None:
        self.window += 1

    def _enter(self, module, args, kwargs=None) -> None:
        # (torch calls a keyword hook removed during the call without kwargs:
        # a detach inside the traced forward)
        self.scopes.append(self.names.get(id(module), type(module).__name__))
        self._guarded(self.pre, module, args, kwargs or {})
        self.window -= 1

    def _exit(self, module, args, output) -> None:
        self.window += 1
        self._guarded(self.post_forward, module, output)
        if self.scopes:
            self.scopes.pop()

    def _guarded(self, step, module, *args) -> None:
        """A failure of ours in a hook: recorded (reported once when the plan is
        built), never raised into the user's forward."""
        try:
            step(module, *args)
        except Exception as exc:
            self.errors.append(f"{type(module).__name__} {step.__name__}: "
                               f"{type(exc).__name__}: {exc}")

    def _close(self, _module, _args, _output) -> None:
        self.window -= 1

    def _method_enter(self, module, args, kwargs) -> None:
        # (only sources are tapped: their node is named for them, no scope needed)
        handled = self.window == 0 and self.opaque == 0
        self._tapped.append(handled)
        if handled:
            self._guarded(self.pre, module, args, kwargs)

    def _method_exit(self, module, _args, output) -> None:
        if self._tapped and self._tapped.pop():
            self._guarded(self.post_forward, module, output)

    # -- module boundaries ----------------------------------------------------
    def scope(self) -> str:
        return self.scopes[-1]  # (the root's own forward body at the bottom)

    def tracked(self, t: Any) -> Node | None:
        nid = self.ids.get(id(t))
        return self.nodes[nid] if nid is not None else None

    def pre(self, module: Any, args: tuple, kwargs: dict) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        entry = self._rules.get(id(module))
        if entry is None:
            if self.opaque == 0:
                self._open_calls.append(None)  # (first: post_forward pops it whatever fails)
                self._open_calls[-1] = self._module_call(module, args)
            return
        self.opaque += 1  # first: post_forward undoes it whatever fails below
        if self.opaque == 1:  # (inside another matched module: opaque, nothing to do)
            name, mod, rule = entry
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            self._fed = any(self.tracked(t) is not None or id(t) in self.post for t in tensors)
            if rule.role == fb.ROUTE:
                self._route_in.append(self.tracked(tensors[0]))
            elif rule.consumes:
                self._opaque_consumer(mod, rule, tensors)
            else:
                for t in tensors:
                    n = self.tracked(t)
                    if n is not None:
                        self.sinks.add(n.id)

    def post_forward(self, module: Any, output: Any) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        entry = self._rules.get(id(module))
        if entry is None:
            if self.opaque == 0:
                call = self._open_calls.pop()
                if call is not None and isinstance(output, torch.Tensor):
                    call.out_shape = tuple(output.shape)
                    self.calls.append(call)
                self._capture(module, output)
                self._calls_of[id(module)] = self._calls_of.get(id(module), 0) + 1
            return
        self.opaque -= 1
        if self.opaque:
            return
        name, mod, rule = entry
        outputs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        if rule.role == fb.ROUTE:
            x = self._route_in.pop()
            if x is not None and isinstance(output, torch.Tensor):
                self._sum_pool(mod, x, output)
        elif rule.is_source and output is not None:
            self._register_source(name, mod, rule, output)
            self._mark_post(outputs)  # a membrane returned next to the spikes
        elif rule.role == fb.CONSUMER or self._fed:
            self._mark_post(outputs)

    def _module_call(self, module: Any, args: tuple) -> ModuleCall | None:
        import torch

        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d,
                                   torch.nn.Conv3d)):
            return None
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None:
            return None
        linear = isinstance(module, torch.nn.Linear)
        call = ModuleCall(linear, tuple(x.shape),
                          params=sum(p.numel() for p in module.parameters()),  # (no children)
                          bias=module.bias is not None,
                          steps=int(x.shape[0]) if getattr(module, "step_mode", None) == "m"
                          else 1)
        if linear:
            call.in_features, call.out_features = module.in_features, module.out_features
        else:
            call.out_channels, call.groups = module.out_channels, module.groups
            call.kernel, call.stride = tuple(module.kernel_size), tuple(module.stride)
            call.weight_per_output = math.prod(module.weight.shape[1:])
        return call

    def _capture(self, module: Any, output: Any) -> None:
        """A derived source some module returns as is (``nn.MaxPool2d`` on spikes,
        also through spikingjelly's multi-step reshape): the runtime reads it in
        that module's forward hook instead of recomputing it."""
        import torch

        if not isinstance(output, torch.Tensor):
            return
        n = self.tracked(output)
        while n is not None and n.kind == "op" and n.func in ops().view_as_reshape \
                and len(n.deps) == 1:
            n = self.nodes[n.deps[0]]
        if n is not None and n.kind == "derived" and n.capture is None \
                and output.numel() == math.prod(n.shape):
            n.capture = (weakref.ref(module), self._calls_of.get(id(module), 0))

    def _register_source(self, name: str, module: Any, rule: fb.NeuronRule, output: Any) -> None:
        import torch

        spikes = neurons.spikes_of(output)
        if not isinstance(spikes, torch.Tensor) or self.tracked(spikes) is not None:
            return
        layout = rule.layout_of(module)
        batch, steps, lead = neurons.batch_time(layout, module, tuple(spikes.shape))
        index = len(self.sources)
        values = self.outputs.get(id(module)) or rule.output_kind(module)
        self.sources.append(Source(index, weakref.ref(module), rule, layout, values,
                                   tuple(spikes.shape), batch, steps, lead))
        self.source_keep[len(self.nodes)] = len(self.keep)
        node = self.add(spikes, kind="source", values=values, source=index, name=name)
        node.scope = name
        node.leaves = frozenset([node.id])
        self.source_out[index] = spikes.detach()
        if not spikes.is_inference():  # inference tensors have no version counter
            self.source_version[index] = spikes._version

    # -- opaque consumers -------------------------------------------------------
    def _opaque_consumer(self, module: Any, rule: fb.NeuronRule, tensors: list) -> None:
        """``TDLinear`` / ``TDConv2d`` / ``TDMultiheadAttention`` charge their
        inputs like the ANN op they stand for; the operators that combine two
        time-differential inputs charge each event the other operand it meets."""
        import torch

        kind = rule.consumes
        if kind in ("sdpa", "ewise", "matmul"):
            return self._operator_consumer(module, kind, tensors)
        seen: set[int] = set()
        for t in tensors:
            n = self.tracked(t)
            if n is None or n.id in seen:
                continue
            seen.add(n.id)
            if kind == "linear":
                g = torch.full(n.shape, float(module.out_features))
                macs = math.prod(n.shape) * module.out_features
            elif kind == "conv":
                x = t if t.dim() == 4 else t.flatten(0, 1)
                pad = module.padding  # a tuple, or "same" / "valid": torch resolves them
                g = ("conv", tuple(x.shape), tuple(module.weight.shape), tuple(module.stride),
                     pad, tuple(module.dilation), False, (0, 0), int(module.groups),
                     tuple(n.shape))
                macs = _conv_macs(x.shape, module.weight.shape, module.stride, pad,
                                  module.dilation, module.groups)
            else:  # mha: q, k, v projections; one tensor passed thrice meets three
                uses = sum(1 for u in tensors if u is t)
                g = torch.full(n.shape, float(module.embed_dim * uses))
                macs = math.prod(n.shape) * module.embed_dim * uses
            self._consumer("linear", type(module).__name__, (n,), g=g,
                           dense=float(macs)).lead = tuple(t.shape[:2])
        # real-valued inputs (the model input's, or downstream of spikes after a
        # non-linear op): dense MACs, as the ANN op would spend (an attention's
        # query, key and value, not its mask; a linear or conv has one input)
        inputs = tensors[:3]
        for i, t in enumerate(inputs):
            if self.tracked(t) is not None or any(u is t for u in inputs[:i]):
                continue
            if kind == "linear":
                macs = math.prod(t.shape) * module.out_features
            elif kind == "conv":
                macs = _conv_macs(t.shape if t.dim() == 4 else t.flatten(0, 1).shape,
                                  module.weight.shape, module.stride, module.padding,
                                  module.dilation, module.groups)
            else:
                macs = math.prod(t.shape) * module.embed_dim * sum(1 for u in inputs if u is t)
            self._mac(float(macs), t)
        if kind == "mha" and len(tensors) >= 2:
            # inside: attention on the real projections (Q·Kᵀ, ·V) and the output
            # projection, dense at every step of the SNN as in the ANN
            q, k, e = tensors[0], tensors[1], module.embed_dim
            rows = math.prod(q.shape[:-1])
            self._mac(float(rows * k.shape[-2] * e * 2 + rows * e * e), q, encoding=not self._fed)

    def _operator_consumer(self, module: Any, kind: str, tensors: list) -> None:
        """Each tracked operand's events meet the other operand's elements; the
        op's dense MACs (what the ANN it stands for spends) go with the first
        tracked operand, or, when none is tracked, to the dense MACs."""
        import torch

        fan: list[tuple[Any, Any]] = []
        dense = 0.0
        if kind == "sdpa" and len(tensors) >= 3:
            q, k, v = tensors[:3]
            fan = [(q, float(k.shape[-2])), (k, float(q.shape[-2])), (v, float(q.shape[-2]))]
            batch = math.prod(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
            # Q·Kᵀ, then ·V
            dense = float(batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1]))
        elif kind in ("ewise", "matmul") and len(tensors) >= 2:
            a, b = tensors[:2]
            sa, sb = _aligned(module, a.shape, b.shape)
            if kind == "ewise":
                shape = torch.broadcast_shapes(sa, sb)
                fan = [(t, torch.ones(shape).sum_to_size(st).reshape(t.shape))
                       for t, st in ((a, sa), (b, sb))]
                dense = float(math.prod(shape))  # one multiply per output element
            else:
                fan = [(a, float(b.shape[-1])), (b, float(a.shape[-2]))]
                batch = math.prod(torch.broadcast_shapes(sa[:-2], sb[:-2]))
                dense = float(batch * sa[-2] * sa[-1] * sb[-1])
        for t, f in fan:
            n = self.tracked(t)
            if n is None:
                continue
            g = f.contiguous() if isinstance(f, torch.Tensor) else \
                torch.full(n.shape, f)
            self._consumer("linear", kind, (n,), g=g, dense=dense).lead = tuple(t.shape[:2])
            dense = 0.0  # (charged once)
        if dense and fan:  # real operands only: the SNN spends the same MACs
            self._mac(dense, fan[0][0], encoding=not self._fed)

    def _sum_pool(self, module: Any, x: Node, output: Any) -> None:
        import torch

        k = _pair(module.kernel_size, 2)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size, 2)
        args = (Ref(x.id), list(k), list(stride), [0, 0], bool(module.ceil_mode))  # (the
        # replay's pool is a sum pool whatever avg_pool2d's divisor arguments say)
        node = self.add(output, kind="op", values=x.values, summed=True,
                        func=torch.ops.aten.avg_pool2d.default, args=args, kwargs={},
                        structural="pool", leaves=x.leaves, deps=(x.id,))
        self.reductions.append((x.id, node.id, self.scope()))

    # -- recording helpers --------------------------------------------------------
    def add(self, tensor: Any, **kwargs: Any) -> Node:
        node = Node(id=len(self.nodes), shape=tuple(tensor.shape), scope=self.scope(), **kwargs)
        self.nodes.append(node)
        self.ids[id(tensor)] = node.id
        self.keep.append(tensor)
        return node

    def template(self, obj: Any) -> Any:
        import torch
        from torch.utils._pytree import tree_map

        def ref(x):  # (untracked tensors stay in the template: it keeps them alive)
            if isinstance(x, torch.Tensor):
                nid = self.ids.get(id(x))
                if nid is not None:
                    return Ref(nid)
            return x

        return tree_map(ref, obj)

    def _consumer(self, kind: str, op: str, inputs: tuple, *, g: Any = None, dense: float = 0.0,
                  seq: int = -1) -> Consumer:
        values = inputs[0].values
        summed = inputs[0].summed
        for n in inputs[1:]:
            values, summed = join(values, n.values), summed or n.summed
        call = self._open_calls[-1] if seq >= 0 and self._open_calls else None
        consumer = Consumer(len(self.consumers), kind, op, self.scope(),
                            tuple(n.id for n in inputs), category(values, summed), values, g=g,
                            dense_macs=dense, seq=seq, call=call)
        self.consumers.append(consumer)
        return consumer

    def _mac(self, macs: float, x: Any, encoding: bool | None = None) -> None:
        if encoding is None:
            encoding = id(x) not in self.post
        self.macs.append(MacOp(macs, encoding, lead=tuple(x.shape[:2])))
        if encoding:
            self.macs[-1].new_steps = x  # replaced by a device count in ``finish``

    def _sink(self, tracked: list[Node], outs: list) -> None:
        for n in tracked:
            self.sinks.add(n.id)
        self._mark_post(outs)

    def _mark_post(self, outs: list) -> None:
        for o in outs:
            if self.tracked(o) is None:
                self.post.add(id(o))
                self.keep.append(o)

    def _op_nodes(self, func, args, kwargs, out, tracked, values, summed, structural) -> list[Node]:
        import torch

        targs, tkw = self.template(args), self.template(kwargs)
        leaves = frozenset().union(*[n.leaves for n in tracked])
        deps = tuple(dict.fromkeys(n.id for n in tracked))
        made = []
        outs = list(enumerate(out)) if isinstance(out, (tuple, list)) else [(None, out)]
        for index, o in outs:
            if isinstance(o, torch.Tensor):
                node = self.add(o, kind="op", values=values, summed=summed, func=func,
                                args=targs, kwargs=tkw, out_index=index,
                                structural=structural, leaves=leaves, deps=deps)
                node.view_of = self._view_of(tracked, o) if structural == "as_is" else None
                made.append(node)
        return made

    def _view_of(self, tracked: list[Node], out: Any) -> tuple | None:
        """Where ``out`` sits in the storage of the one source it views, if it does."""
        if len(tracked) != 1:
            return None
        dep = tracked[0]
        base = dep.id if dep.kind == "source" else (dep.view_of[0] if dep.view_of else None)
        if base is None:
            return None
        src = self.keep[self.source_keep[base]]
        if out.untyped_storage().data_ptr() != src.untyped_storage().data_ptr():
            return None
        return (base, tuple(out.shape), tuple(out.stride()),
                out.storage_offset() - src.storage_offset(), tuple(src.stride()))

    # -- aten ops -----------------------------------------------------------------
    def on_op(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        o = ops()
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        tracked = [n for n in (self.tracked(t) for t in tensors) if n is not None]
        post = any(id(t) in self.post for t in tensors)
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if func in o.weight:
            self._weight_op(func, args, out)
            self._mark_post(outs)
            return
        if not tracked:
            if post:
                self._mark_post(outs)
            return
        if func in o.maxpool:
            return self._maxpool(func, args, kwargs, out, tracked)
        if func.is_view or func in o.copy:
            values, summed = tracked[0].values, tracked[0].summed
            for n in tracked[1:]:
                values, summed = join(values, n.values), summed or n.summed
            self._op_nodes(func, args, kwargs, out, tracked, values, summed, "as_is")
            return
        if func in o.add:
            return self._add(func, args, kwargs, out, tracked, outs)
        if func in o.scale:
            return self._scale(func, args, kwargs, out, tracked, outs)
        if func in o.reduce or func in o.pool:
            x = tracked[0]
            summed_values = x.values if x.values in (fb.SCALED, fb.GRADED) else \
                (fb.COUNT if x.values != fb.SIGNED else fb.SIGNED)
            nodes = self._op_nodes(func, args, kwargs, out, [x], summed_values, True,
                                   "reduce" if func in o.reduce else "pool")
            self.reductions.append((x.id, nodes[0].id, self.scope()))
            return
        if func in o.cumsum:
            x = tracked[0]
            values = fb.COUNT if x.values == fb.BINARY else x.values
            self._op_nodes(func, args, kwargs, out, [x], values, True, "as_is")
            return
        self._sink(tracked, outs)  # BN, comparisons, exp, ...: consumes spikes non-linearly

    def _maxpool(self, func, args, kwargs, out, tracked) -> None:
        """(values, indices): the values are a derived source, the selected events."""
        x = tracked[0]  # (the op's one tensor argument)
        node = self.add(out[0], kind="derived", values=x.values, summed=x.summed, func=func,
                        args=self.template(args), kwargs=self.template(kwargs),
                        out_index=0, deps=(x.id,))
        node.leaves = frozenset([node.id])
        self.post.add(id(out[1]))
        self.keep.append(out[1])

    def _add(self, func, args, kwargs, out, tracked, outs) -> None:
        import torch

        operands = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if all(self.tracked(a) is not None for a in operands):
            values = tracked[0].values
            for n in tracked[1:]:
                values = join(values, n.values)
            if len(operands) == 2 and values in (fb.BINARY, fb.COUNT) and \
                    func in (ops().add - {_op("add.Tensor"), _op("add_.Tensor")}):
                values = fb.SIGNED  # a difference of spikes
            elif values == fb.BINARY:
                values = fb.COUNT
            if len(operands) == 2 and all(n.values == fb.BINARY and not n.summed
                                          for n in tracked[:2]):
                self.spike_adds.append((tracked[0].id, tracked[1].id))
            self._op_nodes(func, args, kwargs, out, tracked, values, True, "add")
            return
        if len(tracked) == 1 and len(operands) == 2:
            # events added into a real tensor (a dense residual stream): one add each
            x = tracked[0]
            t = next(a for a in operands if self.tracked(a) is not None)
            g = torch.ones(tuple(out.shape)).sum_to_size(tuple(t.shape))
            self._consumer("accumulate", str(func).split(".")[1], (x,), g=g.contiguous())
        self._sink(tracked, outs)

    def _scale(self, func, args, kwargs, out, tracked, outs) -> None:
        import torch

        operands = [a for a in args if isinstance(a, torch.Tensor)]
        both = len(operands) == 2 and all(self.tracked(a) is not None for a in operands)
        if both and func in ops().mul:
            a, b = self.tracked(operands[0]), self.tracked(operands[1])
            values = fb.BINARY if a.values == b.values == fb.BINARY else fb.SCALED
            node = self.add(out, kind="derived", values=values, func=func,
                            args=self.template(args), kwargs=self.template(kwargs),
                            deps=(a.id, b.id))
            node.leaves = frozenset([node.id])
            return
        if both:
            return self._sink(tracked, outs)
        x = tracked[0]
        other = args[1] if len(args) > 1 else None
        if isinstance(other, (int, float)) and float(other) == 1.0:
            values = x.values
        elif func in ops().neg and x.values in (fb.BINARY, fb.COUNT, fb.SIGNED):
            values = fb.SIGNED
        else:
            values = fb.SCALED
        self._op_nodes(func, args, kwargs, out, tracked, values, x.summed, "scale")

    def _weight_op(self, func, args, out) -> None:
        import torch

        kind = ops().weight[func]
        seq = self.weight_seq
        self.weight_seq += 1
        call = self._open_calls[-1] if self._open_calls else None
        if call is not None:
            call.seqs.append(seq)
        if kind == "conv":
            x, w, bias = args[0], args[1], args[2]
            stride, padding, dilation, transposed, out_pad, groups = args[3:9]
            dense = float((x.numel() if transposed else out.numel()) * w.shape[1]
                          * math.prod(w.shape[2:]))
        elif kind in ("mm", "bmm"):
            x, w, bias = args[0], args[1], None
            dense = float(math.prod(out.shape) * x.shape[-1])
        else:
            bias, x, w = args[0], args[1], args[2]
            dense = float(math.prod(out.shape) * x.shape[-1])
        if isinstance(bias, torch.Tensor) and self.tracked(bias) is not None:
            self.sinks.add(self.tracked(bias).id)  # added, not a synaptic input
        nx, nw = self.tracked(x), self.tracked(w)
        if nx is None and nw is None:
            self._mac(dense, x)
            return
        lead = tuple(x.shape[:2])
        if nx is not None and nw is not None:
            self._consumer("product", kind, (nx, nw), dense=dense, seq=seq).lead = lead
            return
        if kind == "conv":
            if nx is None:  # spikes as convolution weights: priced as MACs
                self.macs.append(MacOp(dense, False, lead=lead))
                self.sinks.add(nw.id)
                return
            g = ("conv", tuple(x.shape), tuple(w.shape), tuple(stride), tuple(padding),
                 tuple(dilation), bool(transposed), tuple(out_pad), int(groups))
            node = nx
        elif nx is not None:  # A[.., M, K] @ W[.., K, N]: N synapses per element
            g = torch.full(nx.shape, float(w.shape[-1]))
            node = nx
        else:  # W[.., M, K] @ B[.., K, N]: M per element
            g = torch.full(nw.shape, float(x.shape[-2]))
            node = nw
        self._consumer("linear", kind, (node,), g=g, dense=dense, seq=seq).lead = lead

    # -- end of the traced forward ----------------------------------------------
    def finish(self, output: Any, batch_steps: tuple[int, int], batch_major: bool = False) -> None:
        """Mark what the model returns as consumed; turn encoding inputs into
        device counts of the timesteps that bring a new input (no host sync)."""
        import torch
        from torch.utils._pytree import tree_flatten

        for t in tree_flatten(output)[0]:
            n = self.tracked(t) if isinstance(t, torch.Tensor) else None
            if n is not None:
                self.sinks.add(n.id)
        steps, batch = batch_steps
        for mac in self.macs:
            x, mac.new_steps = mac.new_steps, None
            if x is None:
                continue
            mac.steps, mac.new_steps = _new_steps(x, steps, batch, batch_major)


def _new_steps(x: Any, steps: int, batch: int, batch_major: bool) -> tuple[int, Any]:
    """(timesteps the input holds, device count of those with a new non-zero
    input): a static image repeated over T is 1 (the papers' "once per image"),
    first-frame-then-zeros is 1, a DVS stream is T."""
    import torch

    if steps <= 1 or x.dim() < 2:
        return 1, None
    if x.shape[0] == steps and x.shape[1] == batch:
        seq = x
    elif x.shape[0] == steps * batch and batch_major:  # (B*T, ...): sinabs Squeeze
        seq = x.reshape(batch, steps, *x.shape[1:]).transpose(0, 1)
    elif x.shape[0] == steps * batch:  # (T*B, ...): a multi-step model's flattened input
        seq = x.reshape(steps, batch, *x.shape[1:])
    else:
        return 1, None
    flat = seq.detach().reshape(steps, -1)
    nonzero = flat.ne(0).any(dim=1)
    changed = torch.ones(steps, dtype=torch.bool, device=flat.device)
    changed[1:] = flat[1:].ne(flat[:-1]).any(dim=1)
    return steps, (nonzero & changed).sum(dtype=torch.float64)


def _pair(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def _conv_macs(x_shape, w_shape, stride, padding, dilation, groups) -> float:
    import torch

    x = torch.empty(tuple(x_shape), device="meta")
    w = torch.empty(tuple(w_shape), device="meta")
    y = torch.nn.functional.conv2d(x, w, None, stride, padding, dilation, groups)
    return float(y.numel() * w_shape[1] * math.prod(w_shape[2:]))
