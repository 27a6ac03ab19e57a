"""The other arithmetic of one forward, counted the way spikingjelly's
``ACCounter`` / ``MACCounter`` count it (for the SimpleEnergyProfiler parity).

BatchNorm (AC: c + n in eval; MAC: n if affine), every elementwise add/sub/rsub
(AC: out.numel(); two binary tensors: nnz + nnz), sum/mean (in - out),
avg_pool2d (out x (k - 1)) and sigmoid_ (out), inside neurons too (a LIF step
is a few adds per neuron). Static per forward except the two-binary-operands
rule, which depends on values: kept as device tensors (no host sync) and, for
two spike tensors the dataflow tracks, counted per forward from their events.
"""

from __future__ import annotations

import math
from typing import Any


class Census:
    def __init__(self) -> None:
        self.ac = 0.0
        self.mac_bn = 0.0
        self.lazy: list[Any] = []  # device scalars (value-dependent elementwise ACs)
        self._rules: dict[Any, str] | None = None

    def _kinds(self) -> dict[Any, str]:
        if self._rules is None:
            from .dataflow import _op

            rules = {_op("native_batch_norm.default"): "batch_norm",
                     _op("sum.default"): "reduce", _op("sum.dim_IntList"): "reduce",
                     _op("mean.dim"): "reduce", _op("avg_pool2d.default"): "avg_pool",
                     _op("sigmoid_.default"): "sigmoid"}
            for name in ("add.Tensor", "add_.Tensor", "add.Scalar", "add_.Scalar", "sub.Tensor",
                         "sub_.Tensor", "sub.Scalar", "sub_.Scalar", "rsub.Tensor",
                         "rsub.Scalar"):
                rules[_op(name)] = "elementwise"
            rules.pop(None, None)
            self._rules = rules
        return self._rules

    def record(self, func: Any, args: tuple, out: Any, graph: Any) -> None:
        import torch

        kind = self._kinds().get(func)
        if kind is None:
            return
        if kind == "batch_norm":
            x, train = args[0], args[5]
            n, c = x.numel(), x.shape[1]
            stats = args[3] is not None
            self.ac += (n - c + n + c + n + (2 * c if stats else 0)) if train else c + n
            self.mac_bn += (n if args[1] is not None else 0) + (2 * c if train and stats else 0)
        elif kind == "elementwise":
            x = args[0]
            y = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else None
            if y is not None and graph.opaque == 0:
                a, b = graph.tracked(x), graph.tracked(y)
                if a is not None and b is not None and a.values == b.values == "binary" \
                        and not a.summed and not b.summed:
                    return  # counted per forward from the events of both (Graph._add)
            result = out if isinstance(out, torch.Tensor) else x
            if y is None:
                self.ac += result.numel()
                return
            both = _binary(x) & _binary(y)
            nnz = x.count_nonzero() + y.count_nonzero()
            self.lazy.append(torch.where(both, nnz, result.numel()).to(torch.float64))
        elif kind == "reduce":
            self.ac += args[0].numel() - out.numel()
        elif kind == "avg_pool":
            self.ac += out.numel() * (math.prod(args[1]) - 1)
        else:
            self.ac += out.numel()

    def lazy_totals(self) -> list[Any]:
        """Device scalars (one per device) of the value-dependent ACs."""
        import torch

        by_device: dict[Any, list[Any]] = {}
        for t in self.lazy:
            by_device.setdefault(t.device, []).append(t)
        return [torch.stack(ts).sum() for ts in by_device.values()]


def _binary(x: Any) -> Any:
    import torch

    if x.dtype == torch.bool:
        return torch.ones((), dtype=torch.bool, device=x.device)
    return (x.eq(0) | x.eq(1)).all()
