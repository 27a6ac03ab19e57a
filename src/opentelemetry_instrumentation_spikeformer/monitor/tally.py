"""Per-forward counting on the device, as a ``plan.Plan`` says; read once.

Per source and forward: one reduction of its output (its event count into a
slot of a per-forward buffer, or, when a fan-out map is not constant, its
per-element counts, which ``read()`` weighs by the maps in one GEMV). Small
outputs (each under ``DEFER_MAX_ELEMENTS``, ``DEFER_ELEMENTS`` in all) are
reduced together at the end of the forward rather than in their hooks: the same
reductions back to back instead of each between the model's own ops, about a
fifth of the monitor's CPU cost at batch 1 (deferred outputs live until the end
of the forward; one the model changes in place after returning it drops that
forward and is counted in its hook from then on). A large output is reduced in
its hook, while it is still in the cache: read again at the end of the forward
it would come from memory, at a third of the speed. Derived leaves (max pooling
of spikes, spike AND spike) and spike x spike products run their recorded ops
on the real tensors once the last source they need is counted; earlier outputs
are kept by reference until the end of the forward. At the end of the forward
the buffer is added into float64 totals. No ``.item()``, ``.cpu()``,
``.tolist()`` and no branching on values: nothing waits for the device.
``read()`` applies the maps and moves everything to the host in one transfer per
device.
"""

from __future__ import annotations

import math
from typing import Any

from ..frameworks import base as fb
from . import dataflow as df
from .plan import F32_EXACT, Leaf, Plan, Product, kept_shape

_SUM_VALUES = (fb.BINARY, fb.COUNT)  # events = the values themselves
DEFER_ELEMENTS = 1 << 20  # source elements per forward kept for the end-of-forward reductions
DEFER_MAX_ELEMENTS = 1 << 16  # an output this large is reduced in its hook, while cached
_SUM: Any = None  # torch.sum, bound when the first Tally is made (torch is imported lazily)
_F32: Any = None
_INFERENCE: Any = None  # torch.is_inference_mode_enabled

class _Segment:
    """Where one leaf's (or product's) count of one forward goes: a scalar, or
    the per-element counts over the dims its maps depend on."""

    __slots__ = ("key", "wide", "start", "size", "shape", "dims", "copy", "view")

    def __init__(self, key: tuple, wide: bool, shape: tuple, dims: tuple) -> None:
        self.key, self.wide, self.shape, self.dims = key, wide, shape, dims
        self.size = math.prod(shape)
        self.copy = bool(shape) and not dims  # nothing to sum: the counts are the tensor
        self.start = 0
        self.view: Any = None


class Tally:
    """The device state of one plan: totals since attach (or ``reset``)."""

    def __init__(self, plan: Plan, nodes_fn: dict, modified: Any = ()) -> None:
        global _SUM, _F32, _INFERENCE
        import torch

        _SUM, _F32, _INFERENCE = torch.sum, torch.float32, torch.is_inference_mode_enabled
        self.plan = plan
        self.modified = set(modified)  # sources the model changes in place: counted at once
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
        self.segments: dict[tuple, _Segment] = {}
        for leaf in plan.leaves:
            if leaf.per_neuron:
                rows = math.prod(leaf.shape[d] for d in leaf.summed)
                self._segment(("events", leaf.node), rows * leaf.max_value,
                              kept_shape(leaf), leaf.summed)
            else:
                self._segment(("events", leaf.node), math.prod(leaf.shape) * leaf.max_value,
                              (), tuple(range(len(leaf.shape))))
            if leaf.values not in _SUM_VALUES:
                self._segment(("magnitude", leaf.node), 0.0, (), tuple(range(len(leaf.shape))))
        for p in plan.products:
            self._segment(("product", p.consumer), p.bound, (), ())
        self.triggers = plan.trigger
        self.needs = plan.needs
        self.stale = False
        self.calls: dict[int, int] = {}
        self.stash: dict[int, Any] = {}
        self.deferred: list[tuple] = []
        self.inference = False  # this forward runs under torch.inference_mode()
        self.dropped = False
        self.device = None
        self.reset()

    def _segment(self, key: tuple, bound: float, shape: tuple, dims: tuple) -> None:
        self.segments[key] = _Segment(key, bound >= F32_EXACT, shape, dims)

    def reset(self) -> None:
        self.forwards = 0
        self.buf = None  # created on the first forward, on the model's device
        # id(module) -> (shape, dims, out, stash node or None, triggered work,
        # reduced at the forward's end?, source index): the common case, a module
        # called once per forward whose events are its values, counted by the hook
        # itself (``synops.Topology._source_hook``)
        self.fast: dict[int, tuple] = {}

    def _buffers(self, like: Any) -> None:
        """One float32 (and, for counts that could pass 2**24, one float64)
        buffer per forward, added into float64 totals at its end."""
        import torch

        sizes = [0, 0]
        for seg in self.segments.values():
            seg.start = sizes[seg.wide]
            sizes[seg.wide] += max(seg.size, 1)
        device = like.device
        with torch.inference_mode(False):
            self.buf = (torch.zeros(sizes[0], dtype=torch.float32, device=device),
                        torch.zeros(sizes[1], dtype=torch.float64, device=device))
            self.acc = (torch.zeros(sizes[0], dtype=torch.float64, device=device),
                        torch.zeros(sizes[1], dtype=torch.float64, device=device))
        for seg in self.segments.values():
            part = self.buf[seg.wide][seg.start:seg.start + max(seg.size, 1)]
            seg.view = part.view(seg.shape) if seg.shape else part[0]
        self.wide = sizes[1] > 0
        self.device = device
        self._fast_table()

    def _fast_table(self) -> None:
        self.fast = {}
        kept = 0
        for module_id, indices in self.sources_of.items():
            leaf = self.leaf_of.get(indices[0])
            seg = self.segments.get(("events", leaf.node)) if leaf is not None else None
            if len(indices) == 1 and seg is not None and leaf.values in _SUM_VALUES \
                    and not seg.copy and not seg.wide:
                shape = self.shapes[indices[0]]
                size = math.prod(shape)
                small = size < DEFER_MAX_ELEMENTS
                kept += size if small else 0
                defer = small and kept <= DEFER_ELEMENTS and indices[0] not in self.modified
                self.fast[module_id] = (
                    shape, seg.dims, seg.view,
                    leaf.node if indices[0] in self.needs else None,
                    self.triggers.get(indices[0]), defer, indices[0])

    # -- one forward ------------------------------------------------------------
    def begin(self) -> None:
        self.deferred = []  # (output, its version, fast entry) in call order
        self.inference = _INFERENCE()  # no version counters: nothing deferred
        self.dropped = False
        self.calls = {}
        self.stash = {}
        if self.buf is not None:
            self.buf[0].zero_()
            if self.wide:
                self.buf[1].zero_()

    def flush(self) -> None:
        """Count the deferred outputs, in call order (before anything counted at
        once, so that work triggered later finds them stashed)."""
        deferred, self.deferred = self.deferred, []
        for output, version, fast in deferred:
            if output._version != version:  # changed in place since it was returned: this
                self.modified.add(fast[6])  # forward is not counted, the module's later
                self._fast_table()  # outputs are counted in its hook
                self.dropped = True
            self.take(output, fast)
            if self.stale:
                return

    def take(self, output: Any, fast: tuple) -> None:
        """A ``fast`` source's output tensor, checked, then counted: one
        reduction into its slot (one frame: this runs once per layer)."""
        shape, dims, out, node, work = fast[:5]
        if output.shape != shape:
            self.stale = True  # new shapes: the next forward gets its own plan
            return
        if output.requires_grad:
            output = output.detach()
        if output.dtype is not _F32:
            self.source(fast[6], output)
            return
        _SUM(output, dims, out=out)
        if node is not None:
            self.stash[node] = output
        if work:
            self.work(work)

    def end(self) -> bool:
        """Add this forward's buffer into the totals; False if it was dropped."""
        if self.deferred:
            self.flush()
        self.stash = {}
        if self.dropped:
            return False
        if self.buf is not None:
            self.acc[0].add_(self.buf[0])
            if self.wide:
                self.acc[1].add_(self.buf[1])
        self.forwards += 1
        return True

    def on_source(self, module_id: int, output: Any) -> None:
        """Any source's output (the hook counts ``fast`` ones itself)."""
        if self.deferred:
            self.flush()
        indices = self.sources_of.get(module_id)
        if not indices:
            return
        if len(indices) == 1:
            index = indices[0]
        else:
            k = self.calls.get(module_id, 0)
            self.calls[module_id] = k + 1
            if k >= len(indices):  # called more often than traced (a loop over an int
                self.stale = True  # argument): the next forward gets its own plan
                return
            index = indices[k]
        x = output[0] if isinstance(output, (tuple, list)) else output
        if getattr(x, "shape", None) != self.shapes[index]:
            self.stale = True  # new shapes: the next forward gets its own plan
            return
        self.source(index, x.detach() if x.requires_grad else x)

    def on_capture(self, module_id: int, output: Any) -> None:
        calls = self.captures.get(module_id)
        if not calls:
            return
        if self.deferred:
            self.flush()
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
            if index in self.needs:
                self.stash[leaf.node] = x
        work = self.triggers.get(index)
        if work:
            self.work(work)

    def work(self, work: list) -> None:
        """Derived sources and products whose last source just fired."""
        for kind, item in work:
            if kind == "leaf":
                self._derived(item)
            else:
                self._product(item)

    def add(self, leaf: Leaf, x: Any) -> None:
        """Events of one leaf in this forward (and |x| for graded ones): one
        reduction into its segment of the forward's buffer. Every reduction here
        runs in the dtype of the slot it writes (``out=``: float64 for a wide one),
        whatever the input's."""
        import torch

        if leaf.values not in _SUM_VALUES:
            mag = self.segments[("magnitude", leaf.node)]
            torch.sum(x.abs(), mag.dims, out=mag.view)
            y = x.abs() if leaf.values == fb.SIGNED else x.ne(0)
        else:
            y = x
        seg = self.segments[("events", leaf.node)]
        if seg.copy:
            seg.view.copy_(y.reshape(seg.shape))
        else:
            torch.sum(y, seg.dims, out=seg.view)

    def _derived(self, leaf: Leaf) -> None:
        import torch

        if leaf.dot_pair is not None:
            self._program(leaf.program)
            a, b = self.stash.get(leaf.dot_pair[0]), self.stash.get(leaf.dot_pair[1])
            if a is not None and b is not None:
                seg = self.segments[("events", leaf.node)]
                da, db, dims = leaf.dot_dims
                if da:
                    a = a.sum(da, keepdim=True)
                if db:
                    b = b.sum(db, keepdim=True)
                torch.sum(a * b, dims, out=seg.view)
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
        if cols.shape != rows.shape:  # the same batch rows, shaped differently
            cols, rows = cols.reshape(-1), rows.reshape(-1)
        seg = self.segments[("product", p.consumer)]
        torch.sum(cols * rows, tuple(range(cols.dim())), out=seg.view)

    def _program(self, program: list) -> Any:
        """Recompute program nodes from this forward's stashed values (views of
        the real outputs); ``None`` if a source of it did not run."""
        values, run = self.stash, self._run
        out = None
        try:
            for nid in program:
                found = values.get(nid)
                if found is None:
                    fn = run.get(nid)
                    if fn is None:
                        return None
                    found = values[nid] = fn(values)
                out = found
        except _Restride:
            self.stale = True
            return None
        return out

    # -- read --------------------------------------------------------------------
    def device_parts(self) -> tuple[list[Any], list[tuple]]:
        """Tensors to move to the host (on this plan's device) and what each is."""
        import torch

        parts: list[Any] = []
        index: list[tuple] = []
        if self.buf is None:
            return parts, index
        scalars = [seg for seg in self.segments.values() if not seg.shape]
        for wide in (0, 1):
            mine = [seg for seg in scalars if seg.wide == wide]
            if mine:
                at = torch.tensor([seg.start for seg in mine], device=self.device)
                parts.append(self.acc[wide].index_select(0, at))
                index.append(("scalars", tuple(seg.key for seg in mine)))
        for seg in self.segments.values():
            if not seg.shape:
                continue
            counts = self.acc[seg.wide][seg.start:seg.start + seg.size]
            leaf = next(leaf for leaf in self.plan.leaves if leaf.node == seg.key[1])
            parts.append(counts.sum().reshape(1))
            parts.append(_maps_matrix(leaf, self.device) @ counts)
            index += [("events", leaf.node), ("maps", leaf.node)]
        for mac in self.plan.macs:
            if mac.new_steps is not None and mac.new_steps.device == self.device:
                parts.append(mac.new_steps.reshape(1))
                index.append(("new_steps", id(mac)))
        for t in self.plan.census_lazy:
            if t.device == self.device:
                parts.append(t.reshape(1))
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
        for (what, key), size in zip(index, sizes):
            vals = flat[at:at + size]
            at += size
            if what == "scalars":
                for (kind, k), v in zip(key, vals):
                    if kind == "events":
                        events[k] = v
                    elif kind == "magnitude":
                        magnitude[k] = v
                    else:
                        sops[k] += v
            elif what == "events":
                events[key] = vals[0]
            elif what == "maps":
                leaf = next(leaf for leaf in plan.leaves if leaf.node == key)
                cons = sorted(leaf.maps)
                mine = per_leaf_sops.setdefault(key, {})
                for c, v in zip(cons, vals[:len(cons)]):
                    sops[c] += v
                    mine[c] = v
                for c, v in zip(sorted(leaf.in_maps), vals[len(cons):]):
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
    matrix = torch.stack(rows).to(device)  # per neuron: some consumer's map varies (plan.py)
    leaf._matrix = matrix
    return matrix


class _Restride(Exception):
    """A source came back with other strides than at discovery: plan again."""


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
    if n.view_of is not None:
        src, size, stride, offset, src_stride = n.view_of

        def view(values):
            base = values[src]
            if base.stride() != src_stride:
                raise _Restride()
            return base.as_strided(size, stride, base.storage_offset() + offset)

        return view
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
                if a[i] is args[i]:  # a copy: the recorded list must not keep this forward's tensors
                    a[i] = list(args[i])
                a[i][j] = values[r]
        result = func(*a, **kwargs)
        return result[index] if index is not None else result

    return run
