"""Per-forward counting on the device, as a ``plan.Plan`` says; read once.

Per source and forward: one reduction of its output (its event count into a
slot of a per-forward buffer, or, when a fan-out map is not constant, its
per-element counts through one GEMV). Derived leaves (max pooling of spikes,
spike AND spike) and spike x spike products run their recorded ops on the real
tensors, in the hook of the last source they need; earlier outputs are kept by
reference until the end of the forward. At the end of the forward the buffer
is added into float64 totals. No ``.item()``, ``.cpu()``, ``.tolist()`` and no
branching on values: nothing waits for the device. ``read()`` applies the maps
and moves everything to the host in one transfer per device.
"""

from __future__ import annotations

import math
from typing import Any

from ..frameworks import base as fb
from . import dataflow as df
from .plan import F32_EXACT, Leaf, Plan, Product

_SUM_VALUES = (fb.BINARY, fb.COUNT)  # events = the values themselves


class _Counts:
    """One per-neuron leaf: float32 counts folded into float64 before they
    could stop being exact."""

    __slots__ = ("f32", "f64", "ones", "rows", "fold", "left", "shape")

    def __init__(self, leaf: Leaf, like: Any) -> None:
        import torch

        self.shape = tuple(leaf.shape[leaf.keep:])
        size = math.prod(self.shape)
        self.rows = math.prod(leaf.shape[:leaf.keep]) if leaf.keep else 1
        per_forward = self.rows * leaf.max_value
        self.fold = int((F32_EXACT - 1) // per_forward) if per_forward < F32_EXACT else 0
        self.left = self.fold
        with torch.inference_mode(False):
            self.f64 = torch.zeros((1, size), dtype=torch.float64, device=like.device)
            self.f32 = torch.zeros((1, size), dtype=torch.float32, device=like.device)
            self.ones = torch.ones((1, self.rows), dtype=torch.float32, device=like.device)

    def add(self, y: Any) -> None:
        import torch

        y2 = y.reshape(self.rows, -1)
        if self.fold:
            self.f32.addmm_(self.ones, y2)
            self.left -= 1
            if self.left == 0:
                self.flush()
        else:
            self.f64.add_(torch.mm(self.ones, y2))

    def flush(self) -> None:
        if self.fold and self.left != self.fold:
            self.f64.add_(self.f32)
            self.f32.zero_()
            self.left = self.fold


class Tally:
    """The device state of one plan: totals since attach (or ``reset``)."""

    def __init__(self, plan: Plan, nodes_fn: dict) -> None:
        self.plan = plan
        self._run = nodes_fn  # node id -> closure(values) for program nodes
        self.sources_of: dict[int, list[int]] = {}  # id(module) -> source indices by call
        for s in plan.sources:
            module = s.module()
            if module is not None:
                self.sources_of.setdefault(id(module), []).append(s.index)
        self.leaf_of = {leaf.source: leaf for leaf in plan.leaves if leaf.kind == "source"}
        self.captures: dict[int, dict[int, Leaf]] = {}  # id(module) -> call index -> leaf
        for leaf in plan.leaves:
            if leaf.capture is not None:
                module = leaf.capture[0]()
                if module is not None:
                    self.captures.setdefault(id(module), {})[leaf.capture[1]] = leaf
        self.shapes = {s.index: s.shape for s in plan.sources}
        # Slots of the per-forward buffers: (leaf events | leaf magnitude | product).
        self.slots32: list[tuple[str, Any]] = []
        self.slots64: list[tuple[str, Any]] = []
        self._slot: dict[tuple[str, int], tuple[int, int]] = {}
        for leaf in plan.leaves:
            if not leaf.per_neuron:
                wide = math.prod(leaf.shape) * leaf.max_value >= F32_EXACT
                self._assign(("events", leaf.node), wide)
            if leaf.values not in _SUM_VALUES:
                self._assign(("magnitude", leaf.node), False)
        for p in plan.products:
            self._assign(("product", p.consumer), p.bound >= F32_EXACT)
        self.dims = {leaf.node: tuple(range(len(leaf.shape))) for leaf in plan.leaves}
        self.stale = False
        self.calls: dict[int, int] = {}
        self.stash: dict[int, Any] = {}
        self.device = None
        self.counts: dict[int, _Counts] = {}
        self.reset()

    def _assign(self, key: tuple[str, int], wide: bool) -> None:
        table = self.slots64 if wide else self.slots32
        self._slot[key] = (1 if wide else 0, len(table))
        table.append(key)

    def reset(self) -> None:
        self.forwards = 0
        self.buf = None  # created on the first forward, on the model's device
        self.counts = {}

    def _buffers(self, like: Any) -> None:
        import torch

        with torch.inference_mode(False):
            self.device = like.device
            self.buf = [torch.zeros(len(self.slots32), dtype=torch.float32, device=like.device),
                        torch.zeros(len(self.slots64), dtype=torch.float64, device=like.device)]
            self.acc = [torch.zeros(len(self.slots32), dtype=torch.float64, device=like.device),
                        torch.zeros(len(self.slots64), dtype=torch.float64, device=like.device)]
            self.views = [[b[i] for i in range(b.numel())] for b in self.buf]

    def slot(self, kind: str, key: int) -> Any:
        wide, at = self._slot[(kind, key)]
        return self.views[wide][at]

    # -- one forward ------------------------------------------------------------
    def begin(self) -> None:
        self.calls = {}
        self.stash = {}
        if self.buf is not None:
            self.buf[0].zero_()
            if self.slots64:
                self.buf[1].zero_()

    def end(self) -> None:
        if self.buf is not None:
            self.acc[0].add_(self.buf[0])
            if self.slots64:
                self.acc[1].add_(self.buf[1])
        self.forwards += 1
        self.stash = {}

    def on_source(self, module_id: int, output: Any) -> None:
        indices = self.sources_of.get(module_id)
        if not indices:
            return
        if len(indices) == 1:
            index = indices[0]
        else:
            k = self.calls.get(module_id, 0)
            self.calls[module_id] = k + 1
            index = indices[min(k, len(indices) - 1)]
        x = output[0] if isinstance(output, (tuple, list)) else output
        if getattr(x, "shape", None) != self.shapes[index]:
            self.stale = True  # new shapes: the next forward gets its own plan
            return
        self.source(index, x.detach())

    def on_capture(self, module_id: int, output: Any) -> None:
        calls = self.captures.get(module_id)
        if not calls:
            return
        key = -1 - module_id
        k = self.calls.get(key, 0)
        self.calls[key] = k + 1
        leaf = calls.get(k)
        if leaf is not None and not self.stale:
            x = output.detach().reshape(leaf.shape)
            self.add(leaf, x)
            self.stash[leaf.node] = x

    def source(self, index: int, x: Any) -> None:
        if self.buf is None:
            self._buffers(x)
        leaf = self.leaf_of.get(index)
        if leaf is not None:
            self.add(leaf, x)
            if index in self.plan.needs:
                self.stash[leaf.node] = x
        for kind, item in self.plan.trigger.get(index, ()):
            if kind == "leaf":
                self._derived(item)
            else:
                self._product(item)

    def add(self, leaf: Leaf, x: Any) -> None:
        """Events of one leaf in this forward (and |x| for graded ones)."""
        import torch

        values = leaf.values
        f32 = torch.float32
        if values not in _SUM_VALUES:
            torch.sum(x.abs(), self.dims[leaf.node], dtype=f32,
                      out=self.slot("magnitude", leaf.node))
            y = x.abs() if values == fb.SIGNED else x.ne(0).to(f32)
        else:
            y = x
        if leaf.per_neuron:
            counts = self.counts.get(leaf.node)
            if counts is None:
                counts = self.counts[leaf.node] = _Counts(leaf, y)
            if y.dtype != torch.float32:
                y = y.to(torch.float32)
            counts.add(y)
        else:
            wide, at = self._slot[("events", leaf.node)]
            if wide:
                torch.sum(y, self.dims[leaf.node], dtype=torch.float64, out=self.views[1][at])
            elif y.dtype is f32:
                torch.sum(y, self.dims[leaf.node], out=self.views[0][at])
            else:
                torch.sum(y, self.dims[leaf.node], dtype=f32, out=self.views[0][at])

    def _derived(self, leaf: Leaf) -> None:
        import torch

        if leaf.dot_pair is not None:
            self._program(leaf.program)
            a, b = self.stash.get(leaf.dot_pair[0]), self.stash.get(leaf.dot_pair[1])
            if a is not None and b is not None:
                wide, at = self._slot[("events", leaf.node)]
                if wide:
                    a, b = a.to(torch.float64), b.to(torch.float64)
                self.views[wide][at].copy_(sum_product(a, b))
            return
        d = self._program(leaf.program)
        if d is not None:
            self.add(leaf, d)
            self.stash[leaf.node] = d

    def _product(self, p: Product) -> None:
        """Accumulates of A @ B with spikes on both sides: one per pair of
        events that meet = sum over (batch, k) of nnz(A[.., :, k]) * nnz(B[.., k, :])."""
        import torch

        self._program(p.program)
        A, B = self.stash.get(p.a), self.stash.get(p.b)
        if A is None or B is None:
            return
        if not p.a_binary:
            A = A.ne(0).to(torch.float32)
        if not p.b_binary:
            B = B.ne(0).to(torch.float32)
        cols, rows = A.sum(dim=-2), B.sum(dim=-1)
        wide, at = self._slot[("product", p.consumer)]
        if wide:
            cols, rows = cols.to(torch.float64), rows.to(torch.float64)
        torch.sum(cols * rows, tuple(range(cols.dim())), out=self.views[wide][at])

    def _program(self, program: list) -> Any:
        """Recompute program nodes from this forward's stashed values (views of
        the real outputs); ``None`` if a source of it did not run."""
        values, run = self.stash, self._run
        out = None
        for nid in program:
            found = values.get(nid)
            if found is None:
                fn = run.get(nid)
                if fn is None:
                    return None
                found = values[nid] = fn(values)
            out = found
        return out

    # -- read --------------------------------------------------------------------
    def device_parts(self) -> tuple[list[Any], list[tuple]]:
        """Tensors to move to the host (on this plan's device) and what each is."""
        parts: list[Any] = []
        index: list[tuple] = []
        if self.buf is None:
            return parts, index
        parts += self.acc
        index += [("slots32", None), ("slots64", None)]
        for node, counts in self.counts.items():
            counts.flush()
            leaf = next(leaf for leaf in self.plan.leaves if leaf.node == node)
            matrix = _maps_matrix(leaf, counts.f64.device)
            parts.append(counts.f64.sum(dtype=None).reshape(1))
            parts.append((matrix @ counts.f64.reshape(-1, 1)).reshape(-1))
            index += [("events", node), ("maps", node)]
        for mac in self.plan.macs:
            if mac.new_steps is not None and mac.new_steps.device == self.device:
                parts.append(mac.new_steps.reshape(1))
                index.append(("new_steps", id(mac)))
        for t in self.plan.census_lazy:
            if t.device == self.device:
                parts.append(t.reshape(1).to(self.acc[0].dtype))
                index.append(("census", None))
        return parts, index

    def host(self, flat: list[float], index: list[tuple], sizes: list[int]) -> dict:
        """Plain numbers from one transfer: events/magnitude per leaf, SOPs and
        events entering per consumer, products, static counts."""
        plan = self.plan
        events: dict[int, float] = {}
        magnitude: dict[int, float] = {}
        sops: dict[int, float] = {c.id: 0.0 for c in plan.consumers}
        entering: dict[int, float] = {c.id: 0.0 for c in plan.consumers}
        per_leaf_sops: dict[int, dict[int, float]] = {}
        new_steps: dict[int, float] = {}
        census_lazy = 0.0
        at = 0
        slots: list[float] = []
        for (what, key), size in zip(index, sizes):
            vals = flat[at:at + size]
            at += size
            if what in ("slots32", "slots64"):
                table = self.slots32 if what == "slots32" else self.slots64
                for (kind, k), v in zip(table, vals):
                    if kind == "events":
                        events[k] = v
                    elif kind == "magnitude":
                        magnitude[k] = v
                    else:
                        sops[k] += v
                slots += vals
            elif what == "events":
                events[key] = vals[0]
            elif what == "maps":
                leaf = next(leaf for leaf in plan.leaves if leaf.node == key)
                cons = sorted(leaf.maps)
                ins = sorted(leaf.in_maps)
                mine = per_leaf_sops.setdefault(key, {})
                for c, v in zip(cons, vals[:len(cons)]):
                    sops[c] += v
                    mine[c] = v
                for c, v in zip(ins, vals[len(cons):]):
                    entering[c] += v
            elif what == "new_steps":
                new_steps[key] = vals[0]
            elif what == "census":
                census_lazy += vals[0]
        for leaf in plan.leaves:
            if leaf.per_neuron:
                continue
            ev = events.get(leaf.node, 0.0)
            mine = per_leaf_sops.setdefault(leaf.node, {})
            for c, (per_event, per_event_in) in leaf.const.items():
                value = ev * float(per_event)
                sops[c] += value
                mine[c] = value
                entering[c] += ev * float(per_event_in)
        return {"events": events, "magnitude": magnitude, "sops": sops, "entering": entering,
                "per_leaf": per_leaf_sops, "new_steps": new_steps, "census_lazy": census_lazy,
                "forwards": self.forwards}


def _maps_matrix(leaf: Leaf, device: Any) -> Any:
    """(SOP maps, then events-entering maps) of a per-neuron leaf, as rows."""
    import torch

    cache = getattr(leaf, "_matrix", None)
    if cache is not None and cache.device == device:
        return cache
    rows = [leaf.maps[c].reshape(-1) for c in sorted(leaf.maps)]
    rows += [leaf.in_maps[c].reshape(-1) for c in sorted(leaf.in_maps)]
    size = math.prod(leaf.shape[leaf.keep:])
    matrix = torch.stack(rows).to(device) if rows else \
        torch.zeros((0, size), dtype=torch.float64, device=device)
    leaf._matrix = matrix
    return matrix


def sum_product(a: Any, b: Any) -> Any:
    """sum(a * b) with broadcasting, without materialising the product: each
    operand is first summed over the dims where the other one is broadcast."""
    import torch

    nd = max(a.dim(), b.dim())
    a = a.reshape((1,) * (nd - a.dim()) + tuple(a.shape))
    b = b.reshape((1,) * (nd - b.dim()) + tuple(b.shape))
    da = [d for d in range(nd) if b.shape[d] == 1 and a.shape[d] != 1]
    db = [d for d in range(nd) if a.shape[d] == 1 and b.shape[d] != 1]
    if da:
        a = a.sum(dim=da, keepdim=True)
    if db:
        b = b.sum(dim=db, keepdim=True)
    if a.shape == b.shape and a.dtype == b.dtype and a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.reshape(-1), b.reshape(-1))
    return (a * b).sum()


def compile_nodes(plan: Plan) -> dict:
    """A closure per program node computing it from the forward's values, the
    positions of its tracked inputs found once; value-preserving copies skipped."""
    o = df.ops()
    out = {}
    for n in plan.nodes:
        if n is None or n.kind == "source" or n.func is None:
            continue
        out[n.id] = _compile(n, o)
    return out


def _compile(n: df.Node, o: df.Ops) -> Any:
    args, kwargs = list(n.args), dict(n.kwargs)
    refs = []
    for i, a in enumerate(args):
        if isinstance(a, df.Ref):
            refs.append((i, None, a.node))
        elif isinstance(a, (list, tuple)):
            for j, b in enumerate(a):
                if isinstance(b, df.Ref):
                    refs.append((i, j, b.node))
    func, index = n.func, n.out_index
    if func in o.identity and refs and refs[0][1] is None:
        src = refs[0][2]
        return lambda values: values[src]
    if func in o.view_as_reshape:
        src, shape = refs[0][2], args[1]
        return lambda values: values[src].reshape(shape)

    def run(values):
        a = list(args)
        for i, j, r in refs:
            if j is None:
                a[i] = values[r]
            else:
                if not isinstance(a[i], list):
                    a[i] = list(a[i])
                a[i][j] = values[r]
        result = func(*a, **kwargs)
        return result[index] if index is not None else result

    return run
