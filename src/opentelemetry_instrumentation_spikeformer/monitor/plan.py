"""From one traced forward (``dataflow.Graph``) to what each later forward must do.

Every source and derived source is a *leaf*. The recorded ops are replayed
structurally in float64 from ``ones`` leaves (means as sums, average pooling as
sum pooling, untracked reals as zeros) and ``autograd.grad`` of
``sum(replay(x) * g)`` gives, for each (leaf, consumer), the exact number of
synapses each leaf element reaches over all paths (``g``: synapses per input
element of the consumer; a convolution's is the gradient of a ones-convolution).
A map is reduced over the leading dims it does not depend on (batch, usually
time). When every map of a leaf is one constant, a forward only needs the
leaf's event count (one reduction); otherwise its per-element counts (one
GEMV) and the maps are applied at read time. Derived leaves and spike x spike
products get small programs: the recorded ops replayed on the real tensors.

Built once per input signature on CPU; nothing here reads a device tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..frameworks import base as fb
from . import dataflow as df

F32_EXACT = 2 ** 24  # float32 holds every integer below this
# a spike AND spike of at most this many products is summed as the product
# itself (two ops); a larger one sums each operand over the dims the other is
# broadcast along first (three ops, but no large temporary)
DOT_BROADCAST_MAX = 1 << 16
KEPT_MAX = 1 << 16  # per-element counts kept per source and forward, at most


@dataclass
class Leaf:
    node: int
    name: str
    kind: str  # source | derived
    values: str
    shape: tuple
    summed: tuple  # dims summed away per forward: every map is constant along them
    per_neuron: bool  # accumulate per-element counts (some map is not constant)
    maps: dict  # consumer id -> CPU float64 map over the kept dims (SOPs per event)
    in_maps: dict  # consumer id -> map of events entering it (module calls only)
    const: dict  # consumer id -> (sops per event, events in per event) when not per_neuron
    source: int | None
    owner: int  # the last source it descends from: its layer is charged
    program: list = field(default_factory=list)
    capture: Any = None  # (weakref module, call index)
    dot_pair: tuple | None = None  # (node a, node b): events = sum(a * b), no product
    dot_dims: tuple = ((), (), ())  # (dims of a, dims of b summed first; dims of a * b)
    max_value: float = 1.0  # bound of one element's events per forward


@dataclass
class Product:
    consumer: int
    program: list
    a: int
    b: int
    a_binary: bool
    b_binary: bool
    owner: int  # (as a leaf's)
    bound: float  # dense MACs: no more accumulates than that


@dataclass
class Plan:
    signature: tuple
    nodes: list  # only the nodes programs need (others None)
    sources: list  # dataflow.Source
    leaves: list
    products: list
    consumers: list
    macs: list
    calls: list
    trigger: dict  # source index -> [("leaf" | "product", item)] to run in its hook
    needs: set  # source indices whose outputs programs read
    batch: int
    steps: int
    census_ac: float
    census_mac_bn: float
    census_lazy: list  # device scalars
    errors: list

    @property
    def ann_macs(self) -> float:
        """Dense MACs of every weight op of one forward (the ANN doing the same)."""
        return sum(m.macs for m in self.macs) + sum(
            c.dense_macs for c in self.consumers if c.kind in ("linear", "product"))

    def ann_macs_per_sample(self) -> float:
        """MACs of one ANN forward of one sample: each weight op divided by the
        rows it ran for, batch x timesteps if its input still holds the time
        dimension, batch alone if not (a head on the time average runs once)."""
        steps, batch = self.steps, self.batch

        def rows(lead: tuple) -> int:  # (with one timestep, both are the batch)
            timed = lead and (lead[0] == steps * batch or (
                len(lead) > 1 and lead[0] == steps and lead[1] == batch))
            return batch * steps if timed else batch

        ops = [(m.macs, m.lead) for m in self.macs] + [
            (c.dense_macs, c.lead) for c in self.consumers if c.kind in ("linear", "product")]
        return sum(macs / max(rows(lead), 1) for macs, lead in ops)


def build(graph: df.Graph, signature: tuple) -> Plan:
    """The plan of one traced forward (runs with autograd on, whatever mode the
    user's forward is in)."""
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        return _build(graph, signature)


def _normal(t: Any) -> Any:
    """A recorded tensor as the CPU replay can use it: on the CPU (index tensors of
    a GPU model: read once, at the end of the discovery pass) and not an inference
    tensor (those cannot take part in autograd)."""
    import torch

    if not isinstance(t, torch.Tensor):
        return t
    if t.device.type != "cpu":
        t = t.to("cpu")
    return t.clone() if t.is_inference() else t


def _build(graph: df.Graph, signature: tuple) -> Plan:
    import torch

    nodes = graph.nodes
    _terminal_reductions(graph)
    _census_adds(graph)
    for c in graph.consumers:  # convolution maps, outside the tracer
        if isinstance(c.g, tuple) and c.g and c.g[0] == "conv":
            g = _conv_map(*c.g[1:9])
            c.g = g.reshape(c.g[9]) if len(c.g) > 9 else g
        c.g = _normal(c.g)
    leaf_ids = [n.id for n in nodes if n.kind in ("source", "derived")]
    ones = {i: torch.ones(nodes[i].shape, dtype=torch.float64, requires_grad=True)
            for i in leaf_ids}
    replay = _Replay(nodes, ones)
    maps: dict[int, dict] = {i: {} for i in leaf_ids}
    in_maps: dict[int, dict] = {i: {} for i in leaf_ids}
    for c in graph.consumers:
        if c.kind == "product":
            continue
        x_id = c.inputs[0]
        leaves = sorted(nodes[x_id].leaves)
        with torch.enable_grad():
            x = replay(x_id)
            grads = torch.autograd.grad((x * c.g).sum(), [ones[i] for i in leaves],
                                        retain_graph=True, allow_unused=True)
            entering = torch.autograd.grad(x.sum(), [ones[i] for i in leaves],
                                           retain_graph=True, allow_unused=True) \
                if c.call is not None else [None] * len(leaves)
        for lid, gr, gi in zip(leaves, grads, entering):
            if gr is not None:
                maps[lid][c.id] = gr.detach()
            if gi is not None:
                in_maps[lid][c.id] = gi.detach()
    leaves = [_leaf(graph, lid, maps[lid], in_maps[lid]) for lid in leaf_ids]
    products = [_product(graph, c) for c in graph.consumers if c.kind == "product"]
    trigger, needs = _triggers(graph, leaves, products)
    keep_nodes: set[int] = set()
    for item in leaves:  # (a dot leaf's program holds its pair)
        keep_nodes.update(item.program)
    for item in products:
        keep_nodes.update(item.program)
    first = graph.sources[0] if graph.sources else None
    for c in graph.consumers:
        c.g = None  # the maps hold what the read needs
    return Plan(
        signature=signature,
        nodes=[n if n.id in keep_nodes else None for n in nodes],
        sources=graph.sources, leaves=leaves, products=products, consumers=graph.consumers,
        macs=graph.macs, calls=graph.calls, trigger=trigger, needs=needs,
        batch=first.batch if first else 1, steps=first.steps if first else 1,
        census_ac=graph.census.ac, census_mac_bn=graph.census.mac_bn,
        census_lazy=graph.census.lazy_totals(), errors=list(graph.errors))


def _terminal_reductions(graph: df.Graph) -> None:
    """A sum/mean/pool of events whose result reaches anything but a weight op
    is an accumulate per event entering it (one ``reduce`` consumer)."""
    import torch

    nodes = graph.nodes
    weight_inputs = {i for c in graph.consumers for i in c.inputs}
    children: dict[int, list[int]] = {}
    for n in nodes:
        for d in n.deps:
            children.setdefault(d, []).append(n.id)
    for x_id, out_id, scope in graph.reductions:
        if _reaches_non_weight(out_id, children, graph.sinks, weight_inputs, nodes):
            x = nodes[x_id]
            graph.consumers.append(df.Consumer(
                len(graph.consumers), "reduce", nodes[out_id].func.overloadpacket.__name__,
                scope, (x_id,), df.category(x.values, x.summed), x.values,
                g=torch.ones(x.shape, dtype=torch.float64)))


def _census_adds(graph: df.Graph) -> None:
    """spike + spike: ACCounter counts nnz(x) + nnz(y) (recorded per forward)."""
    import torch

    for pair in graph.spike_adds:
        for nid in pair:
            n = graph.nodes[nid]
            graph.consumers.append(df.Consumer(
                len(graph.consumers), "census_add", "add", n.scope, (nid,), df.SPIKES,
                n.values, g=torch.ones(n.shape, dtype=torch.float64)))


def _reaches_non_weight(start, children, sinks, weight_inputs, nodes) -> bool:
    stack, seen = [start], set()
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        kids = children.get(nid, [])
        if nid in sinks or (not kids and nid not in weight_inputs):
            return True
        for k in kids:
            if nodes[k].kind == "derived":
                return True
            stack.append(k)
    return False


def _constant_dims(t: Any) -> set[int]:
    """The dims along which ``t`` does not change."""
    import torch

    return {d for d in range(t.dim()) if torch.equal(t, t.narrow(d, 0, 1).expand_as(t))}


def kept_shape(leaf: "Leaf") -> tuple:
    return tuple(n for d, n in enumerate(leaf.shape) if d not in leaf.summed)


def _uniform(t: Any) -> Any:
    """The 0-d value of a constant tensor, else ``None``."""
    import torch

    flat = t.reshape(-1)
    if flat.numel() == 0:
        return torch.zeros((), dtype=torch.float64)
    first = flat[0]
    return first if torch.equal(flat, first.expand_as(flat)) else None


def _leaf(graph: df.Graph, lid: int, maps: dict, in_maps: dict) -> Leaf:
    import torch

    n = graph.nodes[lid]
    constant = set(range(len(n.shape)))
    for m in list(maps.values()) + list(in_maps.values()):
        constant &= _constant_dims(m)
    summed = tuple(sorted(constant))
    full, full_in = maps, in_maps
    maps, in_maps = _kept_maps(full, summed), _kept_maps(full_in, summed)
    const: dict[int, tuple] = {}
    per_neuron = False
    zero = torch.zeros((), dtype=torch.float64)
    for c in set(maps) | set(in_maps):
        sops = _uniform(maps[c]) if c in maps else zero
        entering = _uniform(in_maps[c]) if c in in_maps else zero
        if sops is None or entering is None:
            per_neuron = True
            break
        const[c] = (sops, entering)
    if per_neuron:
        const = {}
        kept_to = _fast_reduction(summed, n.shape)
        if kept_to != summed:
            summed = kept_to
            maps, in_maps = _kept_maps(full, summed), _kept_maps(full_in, summed)
    leaf = Leaf(lid, n.name, n.kind, n.values, n.shape, summed, per_neuron, maps, in_maps, const,
                n.source, _owner([lid], graph.nodes),
                max_value=16.0 if n.values == fb.COUNT or n.summed else 1.0)
    if n.kind == "derived":
        leaf.capture = n.capture
        leaf.program = _program(lid, graph.nodes)
        if not per_neuron and n.capture is None and n.values == fb.BINARY \
                and n.func in df.ops().mul and len(n.deps) == 2:
            leaf.dot_pair = tuple(n.deps)  # only sum(a * b) is needed
            leaf.dot_dims = _dot_dims(graph.nodes[n.deps[0]].shape, graph.nodes[n.deps[1]].shape)
            if math.prod(n.shape) <= DOT_BROADCAST_MAX:
                leaf.dot_dims = ((), (), leaf.dot_dims[2])
            leaf.program = [i for i in leaf.program if i != lid]
    return leaf


def _kept_maps(maps: dict, summed: tuple) -> dict:
    """Each map over the dims not summed (constant along the summed ones)."""
    out = {}
    for c, m in maps.items():
        out[c] = m[tuple(0 if d in summed else slice(None) for d in range(m.dim()))].contiguous()
    return out


def _fast_reduction(summed: tuple, shape: tuple) -> tuple:
    """The dims to sum per forward for per-element counts: ``summed`` when they
    are leading or trailing dims (one contiguous reduction), else only their
    leading run, the other constant dims kept as counts, if that keeps at most
    ``KEPT_MAX`` counts and an eighth of the output (each is added into the
    totals every forward and weighed at read time). A reduction that skips over
    kept dims is up to 6x slower on a CPU ((4, 8, 96, 4) over (0, 1, 3): 17 us;
    over (0, 1): 3 us)."""
    lead = 0  # (trailing dims alone: no leading run, returned as they are)
    while lead < len(summed) and summed[lead] == lead:
        lead += 1
    kept = math.prod(shape[lead:])
    if not lead or kept > KEPT_MAX or 8 * kept > math.prod(shape):
        return summed
    return summed[:lead]


def _dot_dims(a: tuple, b: tuple) -> tuple:
    """sum(a * b) without the product: sum each operand first over the dims where
    the other one is broadcast (size 1)."""
    nd = max(len(a), len(b))
    pa, pb = (1,) * (nd - len(a)) + tuple(a), (1,) * (nd - len(b)) + tuple(b)
    da = tuple(d - (nd - len(a)) for d in range(nd) if pb[d] == 1 and pa[d] != 1)
    db = tuple(d - (nd - len(b)) for d in range(nd) if pa[d] == 1 and pb[d] != 1)
    return da, db, tuple(range(nd))


def _product(graph: df.Graph, c: df.Consumer) -> Product:
    nodes = graph.nodes
    a, b = _before_batch_reshapes(c.inputs[0], nodes), _before_batch_reshapes(c.inputs[1], nodes)
    return Product(c.id, _program_of((a, b), nodes), a, b,
                   nodes[c.inputs[0]].values == fb.BINARY, nodes[c.inputs[1]].values == fb.BINARY,
                   _owner(c.inputs, nodes), max(c.dense_macs, 1.0))


def _owner(ids, nodes) -> int:
    """The source index whose layer is charged: the last one (by index) the
    nodes descend from (every tracked node descends from one)."""
    return max(nodes[i].source for i in _program_of(ids, nodes) if nodes[i].kind == "source")


def _before_batch_reshapes(nid: int, nodes: list) -> int:
    """The earliest node whose last two dims are the operand's and whose leading
    (batch) dims only reshape into the operand's: matmul's own copies and views
    (``clone``, ``expand``, ``_unsafe_view``) need not run, the product's column
    and row counts are the same on it."""
    o = df.ops()
    node = nodes[nid]
    while node.kind == "op" and len(node.deps) == 1:
        dep = nodes[node.deps[0]]
        same_tail = tuple(dep.shape[-2:]) == tuple(node.shape[-2:])
        same_rows = math.prod(dep.shape[:-2]) == math.prod(node.shape[:-2])
        passes = node.func in o.identity or node.func in o.view_as_reshape or (
            node.func is _expand() and tuple(dep.shape) == tuple(node.shape))
        if not (passes and same_tail and same_rows) or dep.kind == "derived":
            break
        node = dep
    return node.id


def _expand() -> Any:
    import torch

    return torch.ops.aten.expand.default


def _program(nid: int, nodes: list) -> list:
    """Node ids (ascending = execution order) that recompute ``nid`` from the
    source outputs of the same forward (a view of a source straight from it)."""
    need: set[int] = set()
    stack = [nid]
    while stack:
        i = stack.pop()
        if i in need:
            continue
        need.add(i)
        n = nodes[i]
        if n.kind != "source":
            stack.extend((n.view_of[0],) if n.view_of else n.deps)
    return sorted(need)


def _program_of(ids, nodes) -> list:
    out: set[int] = set()
    for i in ids:
        out.update(_program(i, nodes))
    return sorted(out)


def _triggers(graph: df.Graph, leaves: list, products: list) -> tuple[dict, set]:
    """Run each program in the hook of its owner, the last source it needs
    (source indices grow with execution order); derived leaves before what reads
    them."""
    nodes = graph.nodes
    trigger: dict[int, list] = {}
    needs: set[int] = set()
    work = [("leaf", leaf) for leaf in leaves if leaf.kind == "derived" and leaf.capture is None]
    work += [("product", p) for p in products]
    for kind, item in work:  # (a dot leaf's program holds its pair)
        trigger.setdefault(item.owner, []).append((kind, item))
        needs.update(nodes[i].source for i in _program_of(item.program, nodes)
                     if nodes[i].kind == "source")
    for items in trigger.values():
        items.sort(key=lambda e: e[1].node if e[0] == "leaf" else 10 ** 9 + e[1].consumer)
    return trigger, needs


def _conv_map(x_shape, w_shape, stride, padding, dilation, transposed, out_pad, groups) -> Any:
    """Per input element: (output element, weight) pairs it takes part in =
    d/dx sum(conv(x, ones)), computed on one sample and broadcast."""
    import torch

    x = torch.ones((1, *x_shape[1:]), dtype=torch.float64, requires_grad=True)
    w = torch.ones(w_shape, dtype=torch.float64)
    with torch.enable_grad():
        if isinstance(padding, str):  # a TDConv2d's "same" / "valid": torch resolves it
            y = torch.nn.functional.conv2d(x, w, None, stride, padding, dilation, groups)
        else:
            y = torch.ops.aten.convolution.default(x, w, None, list(stride), list(padding),
                                                   list(dilation), bool(transposed),
                                                   list(out_pad), int(groups))
        (gx,) = torch.autograd.grad(y.sum(), x)
    return gx.expand(x_shape).contiguous().detach()


# --------------------------------------------------------------------------- replay
class _Replay:
    """The recorded ops on float64 ``ones`` leaves with path-count semantics."""

    def __init__(self, nodes: list, leaves: dict) -> None:
        self.nodes, self.leaves, self.memo = nodes, leaves, {}

    def __call__(self, nid: int) -> Any:
        import torch

        found = self.memo.get(nid)
        if found is not None:
            return found
        n = self.nodes[nid]
        if n.kind in ("source", "derived"):
            t = self.leaves[nid]
        else:
            values = {d: self(d) for d in n.deps}
            args = _subst(list(n.args), values)
            kwargs = _subst(dict(n.kwargs), values)
            with torch.enable_grad():
                t = _structural(n, args, kwargs, set(map(id, values.values())))
        self.memo[nid] = t
        return t


def _subst(obj: Any, values: dict) -> Any:
    from torch.utils._pytree import tree_map

    return tree_map(lambda x: values[x.node] if isinstance(x, df.Ref) else _normal(x), obj)


def _zero_untracked(v: Any, tracked: set) -> Any:
    import torch

    if isinstance(v, torch.Tensor) and id(v) not in tracked and v.is_floating_point():
        return torch.zeros(v.shape, dtype=torch.float64)
    if isinstance(v, (list, tuple)):
        return type(v)(_zero_untracked(u, tracked) for u in v)
    return v


def _structural(node: df.Node, a: list, kw: dict, tracked: set) -> Any:
    import torch
    import torch.nn.functional as F

    o = df.ops()
    func, kind = node.func, node.structural
    if kind == "add":  # (every tensor operand is tracked: dataflow records no other add)
        out = torch.zeros(node.shape, dtype=torch.float64)
        for part in a:
            if isinstance(part, torch.Tensor):
                out = out + part
        return out
    if kind == "scale":  # (self, other) or (self,): alpha, rounding modes are keywords
        x = next(v for v in a if isinstance(v, torch.Tensor) and id(v) in tracked)
        other = next((v for v in a if v is not x), None)  # (none for neg)
        if func in o.mul and isinstance(other, torch.Tensor):
            return x * (other != 0).to(torch.float64)
        return x.expand(node.shape)
    if kind == "reduce":  # (aten passes dim and keepdim positionally, dtype as a keyword)
        x = a[0]
        if len(a) > 1 and a[1] is not None:
            return x.sum(dim=a[1], keepdim=bool(a[2]) if len(a) > 2 else False)
        return x.sum()
    if kind == "pool":  # sum pooling: every event to every window holding it
        x, nd = a[0], o.pool[func]
        if nd > 0:
            kernel = _pair(a[1], nd)
            stride = _pair(a[2], nd) if len(a) > 2 and a[2] else kernel
            padding = _pair(a[3], nd) if len(a) > 3 else (0,) * nd
            ceil = bool(a[4]) if len(a) > 4 else False
            pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
            return pool(x, kernel, stride, padding, ceil, divisor_override=1)
        return _adaptive_sum_pool(x, tuple(a[1]))
    # as_is: the recorded op on the replay tensors; untracked floats are zeros (no
    # move op takes a dtype or device: those that do are identities)
    a2 = [_zero_untracked(v, tracked) for v in a]
    if func in o.identity:
        return a2[0]
    if func is torch.ops.aten.constant_pad_nd.default:
        return F.pad(a2[0], list(a2[1]), value=0.0)
    if func in o.view_as_reshape:
        return a2[0].reshape(a2[1])
    if func in o.cumsum:
        return a2[0].cumsum(a2[1])
    out = func(*a2, **kw)
    return out[node.out_index] if node.out_index is not None else out


def _pair(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def _adaptive_sum_pool(x: Any, out_size: tuple) -> Any:
    """Adaptive average pooling as window sums (PyTorch's windows)."""
    import torch

    nd = len(out_size)
    out = x
    for d in range(nd):
        dim = x.dim() - nd + d
        n_in, n_out = x.shape[dim], out_size[d]
        m = torch.zeros(n_in, n_out, dtype=torch.float64)
        for i in range(n_out):
            m[(i * n_in) // n_out:-(-((i + 1) * n_in) // n_out), i] = 1.0
        out = torch.movedim(torch.movedim(out, dim, -1) @ m, -1, dim)
    return out
