"""Fan-out of each spiking layer and the MACs of the ANN it came from.

Synaptic operations follow sinabs' ``SNNAnalyzer``: a spike entering a weight
layer costs one operation per synapse it reaches, i.e. the layer's connection
map (a transposed convolution of ones; ``out_features`` for ``Linear``). Here
the cost is charged to the spiking layer that fired, so each spiking layer
gets a per-neuron fan-out map: the connection map of the next weight layer
routed back through pooling (as sum pooling, as SNNAnalyzer rescales average
pooling) and reshapes.

The next weight layer and the shapes come from the execution order of one
forward pass: hooks on every leaf module that only read ``.shape`` and remove
themselves after that pass. Maps are built at read time, off the forward path.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from . import hooks, neurons

EXACT, MEAN, NONE = "exact", "mean", "none"
_POOLS = ("AvgPool", "MaxPool", "LPPool", "SumPool")


@dataclass
class Seen:
    """A leaf module as the discovery pass executed it (held weakly: the
    monitor must not keep the user's model alive)."""

    ref: Any  # weakref.ref to the module
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    bt: int | None = None  # batch x timesteps, for spiking layers

    @property
    def module(self) -> Any:
        return self.ref()


@dataclass
class Route:
    """Where a spiking layer's spikes go: the next weight layer and the modules between."""

    weight: Seen | None
    path: list[Seen] = field(default_factory=list)


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(neurons.spikes_of(value), "shape", None)
    return tuple(shape) if shape is not None else None


def _prod(values) -> int:
    return int(math.prod(values))


def _conv_dims(module: Any) -> int | None:
    import torch

    for dims, klass in ((1, torch.nn.Conv1d), (2, torch.nn.Conv2d), (3, torch.nn.Conv3d)):
        if isinstance(module, klass):
            return dims
    return None


def is_weight_layer(module: Any) -> bool:
    import torch

    return isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))


def _leaves(root: Any, is_neuron: Callable[[Any], bool]):
    """Leaf modules, counting spiking neurons as leaves (their insides are theirs)."""
    stack = [root]
    while stack:
        module = stack.pop()
        children = list(module.children())
        if not children or is_neuron(module):
            yield module
        else:
            stack.extend(children)


class Topology:
    """Execution order of one forward, then routes, fan-out maps and MACs."""

    def __init__(self, root: Any, layer_ids: Any) -> None:
        self._root = weakref.ref(root)
        self._layer_ids = layer_ids  # ids of the monitored spiking modules
        self._handles: list[Any] = []
        self._seen: list[Seen] = []
        self._ids: set[int] = set()
        self.done = False
        self.routes: dict[int, Route] = {}  # id(neuron module) -> route
        self.order: list[int] = []  # ids of the spiking modules in execution order
        self.ann_macs = 0.0  # per sample per timestep = one ANN forward
        self.encoding_macs = 0.0  # weight layers before the first spiking layer, per sample-step
        self._conn: dict[int, Any] = {}
        self._fanout: dict[tuple[int, tuple[int, ...], str], tuple[Any, str]] = {}

    # -- discovery pass ---------------------------------------------------
    def start(self) -> None:
        root = self._root()
        if root is None:
            return
        for module in _leaves(root, self._is_neuron):
            self._handles.append(hooks.forward_hook(module, self._record))
        self._handles.append(hooks.forward_pre_hook(root, self._restart))
        self._handles.append(hooks.forward_hook(root, self._finish))

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _restart(self, _module, _args) -> None:
        self._seen, self._ids = [], set()

    def _record(self, module, args, output) -> None:
        if id(module) in self._ids:
            return
        self._ids.add(id(module))
        seen = Seen(weakref.ref(module), _shape(args[0]) if args else None, _shape(output))
        rule = neurons.kind_of(module) if self._is_neuron(module) else None
        if rule is not None and seen.out_shape:
            batch, steps, _ = neurons.batch_time(rule.layout_of(module), module, seen.out_shape)
            seen.bt = batch * steps
        self._seen.append(seen)

    def _finish(self, _module, _args, _output) -> None:
        self.finalize()

    def finalize(self) -> None:
        """Routes and MACs from what the discovery pass saw; idempotent."""
        if self.done or not self._seen:
            return
        self.stop()
        self.done = True
        seen = self._seen
        spiking = [i for i, s in enumerate(seen) if self._is_neuron(s.module)]
        self.order = [id(seen[i].module) for i in spiking]
        bt = next((seen[i].bt for i in spiking if seen[i].bt), None) or 1
        first = spiking[0] if spiking else len(seen)
        for index, item in enumerate(seen):
            if not is_weight_layer(item.module):
                continue
            macs = _macs(item, bt)
            self.ann_macs += macs
            if index < first:
                self.encoding_macs += macs
        for index in spiking:
            path: list[Seen] = []
            route = Route(None)
            for item in seen[index + 1:]:
                if self._is_neuron(item.module):
                    break
                if is_weight_layer(item.module):
                    route = Route(item, path)
                    break
                path.append(item)
            self.routes[id(seen[index].module)] = route

    # -- fan-out maps (read time) ------------------------------------------
    def _is_neuron(self, module: Any) -> bool:
        return id(module) in self._layer_ids

    def fanout(self, module: Any, neuron_shape: tuple[int, ...], device: Any) -> tuple[Any, str]:
        """Per-neuron synapse count (float64, ``neuron_shape``) and how exact it is."""
        key = (id(module), neuron_shape, str(device))
        found = self._fanout.get(key)
        if found is None:
            found = self._fanout[key] = self._build(module, neuron_shape, device)
        return found

    def _build(self, module: Any, shape: tuple[int, ...], device: Any) -> tuple[Any, str]:
        import torch

        dtype = torch.float64 if getattr(device, "type", str(device)) != "mps" else torch.float32
        with torch.inference_mode(False):
            route = self.routes.get(id(module))
            if route is None or route.weight is None:
                return torch.zeros(shape, dtype=dtype, device=device), NONE
            weight = route.weight.module
            if isinstance(weight, torch.nn.Linear):
                return torch.full(shape, float(weight.out_features), dtype=dtype,
                                  device=device), EXACT
            conn = self._connection_map(route.weight)
            if conn is None:
                return torch.zeros(shape, dtype=dtype, device=device), NONE
            conn = conn.to(device=device, dtype=dtype)
            routed = _route_back(conn, shape, route.path)
            if routed is not None:
                return routed, EXACT
            return torch.full(shape, float(conn.mean()), dtype=dtype, device=device), MEAN

    def _connection_map(self, seen: Seen) -> Any:
        """Synapses reached by one input element: gradient of a ones-convolution."""
        import torch

        found = self._conn.get(id(seen.module))
        if found is not None:
            return found
        dims = _conv_dims(seen.module)
        if dims is None or not seen.in_shape or len(seen.in_shape) < dims + 1:
            return None
        weight = seen.module.weight
        with torch.enable_grad():
            x = torch.ones((1, *seen.in_shape[-(dims + 1):]), dtype=torch.float64,
                           device=weight.device, requires_grad=True)
            ones = torch.ones(weight.shape, dtype=torch.float64, device=weight.device)
            seen.module._conv_forward(x, ones, None).sum().backward()
        found = self._conn[id(seen.module)] = x.grad[0].detach()
        return found


def _macs(item: Seen, bt: int) -> float:
    """Multiply-accumulates per sample per timestep (one ANN forward pass)."""
    module = item.module
    dims = _conv_dims(module)
    if dims is not None:
        if not item.out_shape:
            return 0.0
        per_output = module.in_channels // module.groups * _prod(module.kernel_size)
        return _prod(item.out_shape) / bt * per_output
    if not item.in_shape:
        return 0.0
    return _prod(item.in_shape) / bt * module.out_features


def _sum_pool(x: Any, module: Any) -> Any:
    """``module`` as sum pooling (every spike reaches one pooled cell); ``None`` if unknown."""
    import torch.nn.functional as F

    name = type(module).__name__
    if not any(p in name for p in _POOLS) or name.startswith("Adaptive"):
        return None
    dims = 1 if "1d" in name else 3 if "3d" in name else 2
    if "LPPool" in name and float(getattr(module, "norm_type", 1)) != 1.0:
        return None
    dilation = getattr(module, "dilation", 1)
    if any(d != 1 for d in _tuple(dilation, dims)):
        return None
    kernel = _tuple(module.kernel_size, dims)
    stride = _tuple(module.stride or module.kernel_size, dims)
    padding = _tuple(getattr(module, "padding", 0), dims)
    if x.dim() < dims + 1:
        return None
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    out = pool(x, kernel, stride, padding, bool(getattr(module, "ceil_mode", False)), True)
    return out * _prod(kernel)


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * dims


def _route_back(conn: Any, shape: tuple[int, ...], path: list[Seen]) -> Any:
    """Fan-out per neuron of ``shape`` through ``path`` into the connection map."""
    import torch

    if _prod(shape) == conn.numel() and not any(_pooling(s) for s in path):
        return conn.reshape(shape).clone()
    with torch.enable_grad():
        x = torch.ones((1, *shape), dtype=conn.dtype, device=conn.device, requires_grad=True)
        y = x
        for item in path:
            if _pooling(item):
                y = _sum_pool(y, item.module)
                if y is None:
                    return None
            elif item.in_shape and item.out_shape and \
                    _prod(item.in_shape) != _prod(item.out_shape):
                return None  # changes the number of elements in a way we cannot route
        if y.numel() != conn.numel():
            return None
        (y.reshape(conn.shape) * conn).sum().backward()
    return x.grad[0].detach()


def _pooling(item: Seen) -> bool:
    name = type(item.module).__name__
    return any(p in name for p in _POOLS)
