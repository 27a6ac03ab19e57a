"""Brute-force synop reference, written independently of the monitor.

It runs the model once and works on the *actual* tensors at every aten op:

* each tensor derived from spikes carries its events split by the spiking layer
  they came from ("components", float64, same shape) and two flags: ``summed``
  (it went through a sum of two spike tensors, a sum/mean or a pooling) and
  ``graded`` (its events carry an amplitude: a graded source, or scaled by a
  number other than 1). Index/copy ops apply to every component; sums add
  them; means and average pools sum the events (sum pooling); a max pool takes
  each event at the index the real max pool selected; a product of two spike
  tensors starts a new component (its non-zeros), charged to the layer that
  fired last;
* every weight op that consumes such a tensor runs again on each component with
  all-ones weights (``conv(events, ones)``, ``events @ ones``): the sum of that
  output is the number of (event, synapse) pairs; a matmul of two spike tensors
  runs on ``(A != 0) @ (B != 0)``: one accumulate per pair of events that meet;
* a sum/mean/pool of events whose result reaches a neuron (or anything but a
  weight op) costs one add per event entering it; events added into a real
  tensor cost one add each.

Category of each count: ``graded`` if graded, else ``spike_sums`` if summed,
else ``spikes``. No fan-out maps, no per-neuron counts, no autograd: each
consumer op is re-executed on its exact input.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

aten = torch.ops.aten


def _op(name):
    packet, overload = name.split(".")
    return getattr(getattr(aten, packet, None), overload, None)


VIEWISH = {_op(n) for n in (
    "view.default", "_unsafe_view.default", "reshape.default", "permute.default",
    "transpose.int", "t.default", "expand.default", "unsqueeze.default", "squeeze.dim",
    "squeeze.dims", "select.int", "slice.Tensor", "split.Tensor", "split_with_sizes.default",
    "unbind.int", "clone.default", "_to_copy.default", "detach.default", "alias.default",
    "cat.default", "stack.default", "constant_pad_nd.default", "repeat.default",
    "index_select.default")} - {None}
SUMS = {_op("sum.dim_IntList"), _op("sum.default"), _op("mean.dim"), _op("mean.default")}
AVGPOOL = {_op("avg_pool2d.default"), _op("_adaptive_avg_pool2d.default")}
MAXPOOL = {_op("max_pool2d_with_indices.default")}
ADDS = {_op("add.Tensor"), _op("sub.Tensor")}
SCALES = {_op("mul.Tensor"), _op("div.Tensor"), _op("mul.Scalar"), _op("div.Scalar")}
WEIGHTS = {_op("convolution.default"), _op("mm.default"), _op("addmm.default"),
           _op("bmm.default"), _op("baddbmm.default")}


def category(info) -> str:
    return "graded" if info.graded else "spike_sums" if info.summed else "spikes"


class _T:
    """What the reference knows about one spike-derived tensor."""

    def __init__(self, comps: dict, reductions=frozenset(), summed=False, graded=False):
        self.comps = comps  # source key -> float64 events (same shape)
        self.reductions = reductions  # ids of reductions upstream on a linear path
        self.summed = summed
        self.graded = graded


class BruteForce(TorchDispatchMode):
    def __init__(self, model, is_neuron: Callable[[Any], bool],
                 graded_sources: Callable[[Any], bool] = lambda m: False):
        super().__init__()
        self.model = model
        self.is_neuron = is_neuron
        self.graded_sources = graded_sources
        self.info: dict[int, _T] = {}
        self.keep: list = []
        self.depth = 0
        self.scopes: list[str] = []
        self.names = {id(m): (n or type(m).__name__) for n, m in model.named_modules()}
        self.fired: list[str] = []  # source layers in execution order
        self.by_source: dict[tuple[str, str], float] = defaultdict(float)  # (layer, category)
        self.by_consumer: list[tuple[str, str, str, float]] = []  # (scope, kind, category, sops)
        # per weight consumer, in the same order: events entering it when it is a
        # Linear / Conv module's own op (else 0), and the same op's dense MACs
        self.entering: list[float] = []
        self.dense: list[float] = []
        self.modules: list = []
        self.reduction_events: dict[int, tuple[str, str, dict]] = {}
        self.reduction_folded: set[int] = set()
        self.reduction_terminal: set[int] = set()
        self.accumulates: dict[tuple[str, str], float] = defaultdict(float)
        self._red = 0

    # ------------------------------------------------------------------ plumbing
    def run(self, *args, **kwargs):
        from torch.nn.modules import module as M

        pre = M.register_module_forward_pre_hook(self._pre)
        post = M.register_module_forward_hook(self._post)
        try:
            with torch.no_grad(), self:
                out = self.model(*args, **kwargs)
        finally:
            pre.remove()
            post.remove()
        for t in tree_flatten(out)[0]:
            i = self.info.get(id(t)) if isinstance(t, torch.Tensor) else None
            if i is not None:
                self.reduction_terminal |= i.reductions
        return out

    def _pre(self, m, args):
        self.scopes.append(self.names.get(id(m), type(m).__name__))
        self.modules.append(m)
        if self.depth == 0 and self.is_neuron(m):
            for t in tree_flatten(args)[0]:
                i = self.info.get(id(t)) if isinstance(t, torch.Tensor) else None
                if i is not None:
                    self.reduction_terminal |= i.reductions
        if self.is_neuron(m):
            self.depth += 1

    def _post(self, m, args, out):
        if self.is_neuron(m):
            self.depth -= 1
            if self.depth == 0:
                s = out[0] if isinstance(out, tuple) else out
                name = self.names[id(m)]
                self.fired.append(name)
                graded = self.graded_sources(m)
                events = (s != 0).double() if graded else s.detach().double().abs()
                self._set(s, _T({name: events}, graded=graded))
        if self.scopes:
            self.scopes.pop()
            self.modules.pop()

    def _set(self, t, info):
        self.info[id(t)] = info
        self.keep.append(t)

    def _later(self, keys) -> str:
        return max(keys, key=lambda k: max(i for i, f in enumerate(self.fired) if f == k))

    # ------------------------------------------------------------------ ops
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth:
            return out
        flat = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        tracked = [self.info[id(a)] for a in flat if id(a) in self.info]
        if func in WEIGHTS:
            found = len(self.by_consumer)
            self._weight(func, args)
            if len(self.by_consumer) > found:
                self._detail(func, args, out)
            return out
        if not tracked:
            return out
        reds = frozenset().union(*[t.reductions for t in tracked])
        summed = any(t.summed for t in tracked)
        graded = any(t.graded for t in tracked)
        keys = sorted({k for t in tracked for k in t.comps})
        if func in VIEWISH:
            def per_key(k):
                def sub(a):
                    if isinstance(a, torch.Tensor):
                        i = self.info.get(id(a))
                        if i is not None:
                            return i.comps.get(k, torch.zeros(a.shape, dtype=torch.float64))
                        if a.is_floating_point():
                            return torch.zeros(a.shape, dtype=torch.float64)
                    return a
                a2 = tree_map(sub, args)
                kw2 = {kk: v for kk, v in kwargs.items() if kk not in ("dtype", "memory_format")}
                if func in (_op("view.default"), _op("_unsafe_view.default")):
                    return a2[0].reshape(a2[1])
                if func is _op("_to_copy.default"):
                    return a2[0].clone()
                return func(*a2, **kw2)
            res = {k: per_key(k) for k in keys}
            if isinstance(out, (tuple, list)):
                for j, o in enumerate(out):
                    self._set(o, _T({k: v[j] for k, v in res.items()}, reds, summed, graded))
            else:
                self._set(out, _T(res, reds, summed, graded))
            return out
        operands = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if func in ADDS and all(id(a) in self.info for a in operands):
            comps = {}
            for a in operands:
                for k, v in self.info[id(a)].comps.items():
                    v = v.expand(out.shape)
                    comps[k] = comps[k] + v if k in comps else v.clone()
            self._set(out, _T(comps, reds, True, graded))
            return out
        if func in ADDS:  # events added into a real tensor: one add each
            x = next(self.info[id(a)] for a in operands if id(a) in self.info)
            scope = self.scopes[-1] if self.scopes else ""
            for k, v in x.comps.items():
                value = float(v.expand(out.shape).sum())
                self.by_source[(k, category(x))] += value
                self.accumulates[(scope, category(x))] += value
            self.reduction_terminal |= reds
            return out
        if func in SCALES:
            if len(operands) == 2 and all(id(a) in self.info for a in operands):
                key = self._later(keys)
                both_spikes = not graded and not summed
                self._set(out, _T({key: (out != 0).double()}, graded=not both_spikes))
                self.reduction_terminal |= reds
                return out
            x = self.info[id(operands[0])] if id(operands[0]) in self.info else \
                self.info[id(operands[1])]
            other = args[1] if len(args) > 1 else None
            mask = (other != 0).double() if isinstance(other, torch.Tensor) else 1.0
            one = isinstance(other, (int, float)) and float(other) == 1.0
            self._set(out, _T({k: (v * mask).expand(out.shape) for k, v in x.comps.items()},
                              reds, x.summed, x.graded or not one))
            return out
        if func in SUMS or func in AVGPOOL:
            x = self.info[id(args[0])]
            rid = self._red
            self._red += 1
            events = {k: float(v.sum()) for k, v in x.comps.items()}
            self.reduction_events[rid] = (self.scopes[-1] if self.scopes else "", category(x),
                                          events)
            if func in SUMS:
                dims = args[1] if len(args) > 1 else None
                keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
                comps = {k: (v.sum(dim=dims, keepdim=keep) if dims is not None else v.sum())
                         for k, v in x.comps.items()}
            elif func is _op("avg_pool2d.default"):
                k_, s_ = args[1], (args[2] if len(args) > 2 and args[2] else args[1])
                p_ = args[3] if len(args) > 3 else 0
                ceil = args[4] if len(args) > 4 else False
                comps = {k: torch.nn.functional.avg_pool2d(v, k_, s_, p_, ceil, True, 1)
                         for k, v in x.comps.items()}
            else:
                comps = {k: _adaptive_sum_loops(v, tuple(args[1])) for k, v in x.comps.items()}
            self._set(out, _T(comps, reds | {rid}, True, x.graded))
            return out
        if func in MAXPOOL:
            x = self.info[id(args[0])]
            o, idx = out
            comps = {k: v.flatten(-2).gather(-1, idx.flatten(-2)).view(o.shape)
                     for k, v in x.comps.items()}
            if len(comps) > 1:  # a new event tensor: charged to the later layer
                comps = {self._later(list(comps)): sum(comps.values())}
            self._set(o, _T(comps, reds, x.summed, x.graded))
            self.reduction_terminal |= reds
            return out
        self.reduction_terminal |= reds  # anything else consumes events non-linearly
        return out

    def _weight(self, func, args):
        scope = self.scopes[-1] if self.scopes else ""
        if func is _op("convolution.default"):
            x, w = args[0], args[1]
            xi = self.info.get(id(x))
            if xi is None:
                return
            self.reduction_folded |= xi.reductions
            total = 0.0
            for k, v in xi.comps.items():
                y = aten.convolution.default(v, torch.ones(w.shape, dtype=torch.float64), None,
                                             *args[3:9])
                s = float(y.sum())
                self.by_source[(k, category(xi))] += s
                total += s
            self.by_consumer.append((scope, "linear", category(xi), total))
            return
        if func in (_op("mm.default"), _op("bmm.default")):
            a, b = args[0], args[1]
        else:
            a, b = args[1], args[2]
        ai, bi = self.info.get(id(a)), self.info.get(id(b))
        if ai is None and bi is None:
            return
        if ai is not None and bi is not None:
            self.reduction_folded |= ai.reductions | bi.reductions
            value = float(torch.matmul((a != 0).double(), (b != 0).double()).sum())
            kind = _T({}, summed=ai.summed or bi.summed, graded=ai.graded or bi.graded)
            self.by_source[(self._later(set(ai.comps) | set(bi.comps)), category(kind))] += value
            self.by_consumer.append((scope, "product", category(kind), value))
            return
        xi, ones_left = (ai, False) if ai is not None else (bi, True)
        self.reduction_folded |= xi.reductions
        total = 0.0
        for k, v in xi.comps.items():
            if ones_left:
                s = float(torch.matmul(torch.ones(a.shape, dtype=torch.float64), v).sum())
            else:
                s = float(torch.matmul(v, torch.ones(b.shape, dtype=torch.float64)).sum())
            self.by_source[(k, category(xi))] += s
            total += s
        self.by_consumer.append((scope, "linear", category(xi), total))

    def _detail(self, func, args, out):
        """Events entering the consumer just recorded and its dense MACs (the
        output's elements times the length of what each one sums over)."""
        kind = self.by_consumer[-1][1]
        module = self.modules[-1] if self.modules else None
        call = isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d,
                                   torch.nn.Conv3d))
        if func is _op("convolution.default"):
            x, w = args[0], args[1]
            per_out = w.shape[1] * math.prod(w.shape[2:])
        else:
            x = args[0] if func in (_op("mm.default"), _op("bmm.default")) else args[1]
            other = args[1] if func in (_op("mm.default"), _op("bmm.default")) else args[2]
            per_out = x.shape[-1]
            if id(x) not in self.info:
                x = other
        info = self.info.get(id(x))
        events = sum(float(v.sum()) for v in info.comps.values()) if info is not None else 0.0
        self.entering.append(events if call and kind == "linear" else 0.0)
        self.dense.append(float(out.numel() * per_out))

    # ------------------------------------------------------------------ results
    def _terminal(self, rid) -> bool:
        return rid in self.reduction_terminal or rid not in self.reduction_folded

    def reduce_adds(self) -> dict[tuple[str, str], float]:
        """Adds of terminal reductions by (scope, category)."""
        out: dict = defaultdict(float)
        for rid, (scope, cat, events) in self.reduction_events.items():
            if self._terminal(rid):
                out[(scope, cat)] += sum(events.values())
        return dict(out)

    def per_source(self) -> dict[tuple[str, str], float]:
        """Everything charged to each layer that fired, by category."""
        out = defaultdict(float, self.by_source)
        for rid, (_scope, cat, events) in self.reduction_events.items():
            if self._terminal(rid):
                for k, v in events.items():
                    out[(k, cat)] += v
        return dict(out)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for (_layer, cat), v in self.per_source().items():
            out[cat] += v
        return dict(out)


def _adaptive_sum_loops(v, out_size):
    """Adaptive sum pooling by explicit loops over output cells (PyTorch's windows:
    start = floor(i * In / Out), end = ceil((i + 1) * In / Out))."""
    h, w = v.shape[-2:]
    oh, ow = out_size
    out = torch.zeros(*v.shape[:-2], oh, ow, dtype=torch.float64)
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[..., i, j] = v[..., h0:h1, w0:w1].sum(dim=(-2, -1))
    return out


def brute_force(model, is_neuron, *args, **kwargs) -> BruteForce:
    bf = BruteForce(model, is_neuron)
    bf.run(*args, **kwargs)
    return bf
