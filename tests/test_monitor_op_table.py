"""Every row of the monitor's aten op table (``monitor/dataflow.py``), run on
real spikes: a spiking layer, the op, then a linear layer. The test checks that
the op reaches the tracer and that the linear layer's SOPs equal
3 × the events the op passes on. Those events are counted here from the spikes
with other torch ops (window sums by ``unfold``, loops for adaptive windows),
under ``no_grad`` and under ``inference_mode``, which decomposes composite ops
differently. An op missing from its row would be a sink, and the linear layer
would get MACs instead of SOPs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron

from opentelemetry_instrumentation_spikeformer.monitor import dataflow as df
from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

nn = torch.nn
OUT = 3  # synapses per event of the linear layer
IDX = [0, 2, 3]
MASK = torch.tensor([1.0, 0.0, 2.0, 0.0, 3.0, 1.0])


def _windows(s, kernel, stride):
    """Sum of each pooling window over the trailing dims, by ``unfold``."""
    first = s.dim() - len(kernel)
    for i, (k, st) in enumerate(zip(kernel, stride)):
        s = s.unfold(first + i, k, st)
    return s.sum(tuple(range(-len(kernel), 0)))


def _adaptive(s, out):
    """Adaptive-pool window sums, by loops over [floor(i*n/o), ceil((i+1)*n/o))."""
    dims = len(out)
    lead, sizes = s.shape[:-dims], s.shape[-dims:]
    result = torch.zeros(*lead, *out, dtype=torch.float64)
    for index in torch.cartesian_prod(*[torch.arange(o) for o in out]).reshape(-1, dims):
        window = tuple(slice(math.floor(i * n / o), math.ceil((i + 1) * n / o))
                       for i, n, o in zip(index.tolist(), sizes, out))
        result[(..., *index.tolist())] = s[(..., *window)].double().sum(tuple(range(-dims, 0)))
    return result


def _max_windows(s, kernel):
    """Max over non-overlapping windows: the one selected input of each."""
    first = s.dim() - len(kernel)
    for i, k in enumerate(kernel):
        s = s.unfold(first + i, k, k)
    return s.amax(tuple(range(-len(kernel), 0)))


SPIKES, SIGNED = ("spikes", "binary"), ("spikes", "signed")
SUMS, SIGNED_SUMS = ("spike_sums", "count"), ("spike_sums", "signed")
GRADED = ("graded", "scaled")


def _flip(s):
    return s.flip(-1)


# (the op's name in the table, the op applied to spikes s, the events it passes on)
ROWS = [
    ("clone.default", lambda s: s.clone(), lambda s: s, SPIKES),
    ("_to_copy.default", lambda s: s.double(), lambda s: s, SPIKES),
    ("detach.default", lambda s: s.detach(), lambda s: s, SPIKES),
    ("cat.default", lambda s: torch.cat([s, _flip(s)], 1), lambda s: 2 * s, SPIKES),
    ("stack.default", lambda s: torch.stack([s, s], 1), lambda s: 2 * s, SPIKES),
    ("constant_pad_nd.default", lambda s: F.pad(s, (1, 2)), lambda s: s, SPIKES),
    ("index_select.default", lambda s: s.index_select(1, torch.tensor(IDX)), lambda s: s[:, IDX],
     SPIKES),
    ("gather.default", lambda s: s.gather(3, torch.tensor([0, 0, 5]).expand(2, 4, 6, 3)),
     lambda s: torch.stack([s[..., 0], s[..., 0], s[..., 5]], -1), SPIKES),
    ("index.Tensor", lambda s: s[:, torch.tensor(IDX)],
     lambda s: s.index_select(1, torch.tensor(IDX)), SPIKES),
    ("repeat.default", lambda s: s.repeat(1, 2, 1, 1), lambda s: 2 * s, SPIKES),
    ("flip.default", _flip, lambda s: s, SPIKES),
    ("roll.default", lambda s: s.roll(1, -1), lambda s: s, SPIKES),
    ("pixel_shuffle.default", lambda s: F.pixel_shuffle(s, 2), lambda s: s, SPIKES),
    ("pixel_unshuffle.default", lambda s: F.pixel_unshuffle(s, 2), lambda s: s, SPIKES),
    ("upsample_nearest2d.default", lambda s: F.interpolate(s, scale_factor=2, mode="nearest"),
     lambda s: 4 * s, SPIKES),
    ("_unsafe_index.Tensor",  # (also how inference_mode decomposes the upsampling)
     lambda s: torch.ops.aten._unsafe_index.Tensor(s, [None, torch.tensor(IDX)]),
     lambda s: s[:, IDX], SPIKES),
    ("_unsafe_view.default", lambda s: s.transpose(2, 3).reshape(2, -1), lambda s: s, SPIKES),
    ("view.default", lambda s: s.view(2, -1), lambda s: s, SPIKES),
    ("sum.dim_IntList", lambda s: s.sum(1), lambda s: s, SUMS),
    ("sum.default", lambda s: s.sum(), lambda s: s, SUMS),
    ("mean.dim", lambda s: s.mean((1, 2)), lambda s: s, SUMS),
    ("mean.default", lambda s: s.mean(), lambda s: s, SUMS),
    ("avg_pool2d.default", lambda s: F.avg_pool2d(s, 3, 2, padding=1),
     lambda s: _windows(F.pad(s, (1, 1, 1, 1)), (3, 3), (2, 2)), SUMS),
    ("avg_pool3d.default", lambda s: F.avg_pool3d(s, 2),
     lambda s: _windows(s, (2, 2, 2), (2, 2, 2)), SUMS),
    ("_adaptive_avg_pool2d.default", lambda s: F.adaptive_avg_pool2d(s, 4),
     lambda s: _adaptive(s, (4, 4)), SUMS),
    ("_adaptive_avg_pool3d.default", lambda s: F.adaptive_avg_pool3d(s, (3, 4, 4)),
     lambda s: _adaptive(s, (3, 4, 4)), SUMS),
    ("max_pool2d_with_indices.default", lambda s: F.max_pool2d(s, 2),
     lambda s: _max_windows(s, (2, 2)), SPIKES),
    ("max_pool3d_with_indices.default", lambda s: F.max_pool3d(s, 2),
     lambda s: _max_windows(s, (2, 2, 2)), SPIKES),
    ("add.Tensor", lambda s: s + _flip(s), lambda s: 2 * s, SUMS),
    ("add_.Tensor", lambda s: s.clone().add_(_flip(s)), lambda s: 2 * s, SUMS),
    ("sub.Tensor", lambda s: s - _flip(s), lambda s: 2 * s, SIGNED_SUMS),  # both arrive
    ("sub_.Tensor", lambda s: s.clone().sub_(_flip(s)), lambda s: 2 * s, SIGNED_SUMS),
    ("mul.Tensor", lambda s: s * _flip(s), lambda s: s * _flip(s), SPIKES),  # coincidences
    ("mul_.Tensor", lambda s: s.clone().mul_(_flip(s)), lambda s: s * _flip(s), SPIKES),
    ("div.Tensor", lambda s: s / 2.0, lambda s: s, GRADED),
    ("div_.Tensor", lambda s: s.clone().div_(torch.full((6,), 2.0)), lambda s: s, GRADED),
    ("mul.Scalar", lambda s: torch.ops.aten.mul.Scalar(s, 3.0), lambda s: s, GRADED),
    ("div.Scalar", lambda s: torch.ops.aten.div.Scalar(s, 4.0), lambda s: s, GRADED),
    ("neg.default", lambda s: -s, lambda s: s, SIGNED),
    ("cumsum.default", lambda s: s.cumsum(1), lambda s: s.cumsum(1), SUMS),
    # the same rows where the values decide: a scale of 1 keeps spikes; a scale by a
    # real tensor grades them; a broadcast AND; negated and differenced sums stay signed
    ("mul.Tensor", lambda s: s * 1.0, lambda s: s, SPIKES),
    ("mul.Tensor", lambda s: s * torch.full((6,), 3.0), lambda s: s, GRADED),
    ("mul.Tensor", lambda s: s * s[:, :1], lambda s: s * s[:, :1], SPIKES),
    ("mul.Tensor", lambda s: s[:, :, :1] * s, lambda s: s[:, :, :1] * s, SPIKES),
    ("neg.default", lambda s: -(s + _flip(s)), lambda s: 2 * s, SIGNED_SUMS),
    ("neg.default", lambda s: -(s * 2.0), lambda s: s, GRADED),
    ("sub.Tensor", lambda s: (s + s) - _flip(s), lambda s: 3 * s, SIGNED_SUMS),
    # sums and cumulations of amplitudes and of signed events keep their kind
    ("sum.dim_IntList", lambda s: (s * 2.0).sum(1), lambda s: s, GRADED),
    ("sum.dim_IntList", lambda s: (s - _flip(s)).sum(1), lambda s: 2 * s, SIGNED_SUMS),
    ("cumsum.default", lambda s: (s - _flip(s)).cumsum(1), lambda s: (s + _flip(s)).cumsum(1),
     SIGNED_SUMS),
    ("max_pool2d_with_indices.default", lambda s: F.max_pool2d(s + _flip(s), 2),
     lambda s: _max_windows(s + _flip(s), (2, 2)), SUMS),  # the selected sum
    ("mul.Tensor", lambda s: s * s[0], lambda s: s * s[0], SPIKES),  # fewer dims on one side
    ("mul.Tensor", lambda s: s[0] * s, lambda s: s[0] * s, SPIKES),
    ("mul.Tensor", lambda s: s * MASK, lambda s: (s * MASK != 0).double(), GRADED),  # (zeros drop)
    ("mul.Tensor", lambda s: MASK * s, lambda s: (s * MASK != 0).double(), GRADED),
    ("cat.default", lambda s: torch.cat([s, torch.full_like(s, 0.5)], 1), lambda s: s, SPIKES),
    ("avg_pool2d.default", lambda s: F.avg_pool2d(s, 2, 1), lambda s: _windows(s, (2, 2), (1, 1)),
     SUMS),
    ("mul.Tensor", lambda s: s[:, :1] * torch.full((4, 1, 1), 2.0),  # each event, 4 times
     lambda s: s[:, :1].expand(2, 4, 6, 6), GRADED),
    ("sum.dim_IntList", lambda s: s.sum(1, keepdim=True) * torch.full((4, 1, 1), 2.0),
     lambda s: 4 * s, GRADED),  # the kept dim broadcasts
    ("div.Tensor", lambda s: s[:, :1] / torch.full((4, 1, 1), 2.0),
     lambda s: s[:, :1].expand(2, 4, 6, 6), GRADED),
    ("avg_pool2d.default", lambda s: F.avg_pool2d(s, 4, 4, ceil_mode=True),  # partial windows
     lambda s: _windows(F.pad(s, (0, 2, 0, 2)), (4, 4), (4, 4)), SUMS),
    ("cat.default", lambda s: torch.cat([s, s + _flip(s)], 1), lambda s: 3 * s, SUMS),
    ("cat.default", lambda s: torch.cat([s + _flip(s), s], 1), lambda s: 3 * s, SUMS),
    ("cat.default", lambda s: torch.cat([s, s, s + _flip(s)], 1), lambda s: 4 * s, SUMS),
    ("add.Tensor", lambda s: s * 2.0 + s, lambda s: 2 * s, GRADED),  # the join of both
    ("add.Tensor", lambda s: s + s * 2.0, lambda s: 2 * s, GRADED),
    ("mul.Tensor", lambda s: s[0] * s[:, :, :1], lambda s: s[0] * s[:, :, :1], SPIKES),
    ("mul.Tensor", lambda s: s[:, :, :1] * s[0], lambda s: s[:, :, :1] * s[0], SPIKES),
    # (an operand with fewer dims against one of batch 1)
    ("mul.Tensor", lambda s: s[0] * s[:1], lambda s: s[0] * s[:1], SPIKES),
    ("mul.Tensor", lambda s: s[:1] * s[1], lambda s: s[:1] * s[1], SPIKES),
    # (amplitudes that coincide: graded)
    ("mul.Tensor", lambda s: (s * 2.0) * (_flip(s) * 3.0), lambda s: s * _flip(s), GRADED),
]
MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


class _Row(nn.Module):
    def __init__(self, op, n_in: int) -> None:
        super().__init__()
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.op = op
        self.fc = nn.Linear(n_in, OUT)

    def forward(self, x):
        return self.fc(self.op(self.sn(x)).float().reshape(1, -1))


def _spikes(seed: int):
    return torch.rand(2, 4, 6, 6, generator=torch.Generator().manual_seed(seed))


def _measure(op, mode, monkeypatch, kinds=("linear",), scope="fc"):
    """(the consumers of these kinds: weight ops in ``scope`` (None: anywhere),
    others anywhere; the spikes of each forward; the ops traced)."""
    traced: set[str] = set()
    on_op = df.Graph.on_op

    def spy(graph, func, args, kwargs, out):
        traced.add(str(func).removeprefix("aten."))
        return on_op(graph, func, args, kwargs, out)

    monkeypatch.setattr(df.Graph, "on_op", spy)
    torch.manual_seed(0)
    with torch.no_grad():
        n_in = op((_spikes(0) > 0.5).float()).numel()
    model = _Row(op, n_in)
    spikes = []
    model.sn.register_forward_hook(lambda _m, _a, out: spikes.append(out.clone()))
    monitor = monitor_model(model, "m")
    with MODES[mode]():
        for seed in (1, 2):
            model(_spikes(seed))
            functional.reset_net(model)
    snap = monitor.read(detail=True)
    assert [t.plan.errors for t in monitor.topology.tallies.values()] == [[]]  # traced whole
    monitor.detach()
    fc = [c for c in snap["consumers"] if c["kind"] in kinds
          and (scope is None or c["scope"] == scope or c["kind"] != "linear")]
    return fc, spikes, traced


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,op,events,reaching", ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(ROWS)])
def test_each_row_passes_on_the_events_the_op_moves(name, op, events, reaching, mode,
                                                    monkeypatch):
    fc, spikes, _ = _measure(op, mode, monkeypatch)
    expected = sum(float(events(s.double()).sum()) for s in spikes) * OUT
    assert expected > 0
    assert len(fc) == 1 and fc[0]["synops"] == expected, (name, fc, expected)
    assert (fc[0]["category"], fc[0]["values"]) == reaching


def test_every_row_of_the_table_is_traced_and_tested(monkeypatch):
    """The table and ROWS hold the same ops, and each op reaches the tracer
    (under ``no_grad`` or, for composites, under ``inference_mode``)."""
    table = {*df.MOVE_OPS, *df.IDENTITY_OPS, *df.RESHAPE_OPS, *df.REDUCE_OPS, *df.POOL_OPS,
             *df.MAXPOOL_OPS, *df.ADD_OPS, *df.SCALE_OPS, *df.CUMSUM_OPS}
    assert table == {r[0] for r in ROWS}
    assert all(df._op(name) is not None for name in table | set(df.WEIGHT_OPS))
    for name, op, *_ in ROWS:
        traced = set()
        for mode in MODES:
            traced |= _measure(op, mode, monkeypatch)[2]
        assert name in traced, (name, traced)


@pytest.mark.parametrize("mode", MODES)
def test_a_sum_into_a_non_linear_op_costs_one_add_per_event(mode, monkeypatch):
    """A reduction whose result goes anywhere but a weight op (here a sigmoid)
    costs one add per event entering it; the linear layer after the sigmoid gets
    real values (dense MACs, no SOPs)."""
    fc, spikes, _ = _measure(lambda s: torch.sigmoid(s.sum(1)), mode, monkeypatch,
                             kinds=("reduce", "linear"))
    events = sum(float(s.sum()) for s in spikes)
    assert [(c["kind"], c["category"], c["synops"]) for c in fc] == [("reduce", "spikes", events)]
    assert [(c["op"], c["scope"]) for c in fc] == [("sum", "_Row")]  # (in the model's forward)

    def also_a_weight_op(s):  # the sum feeds the linear layer too: still one add per event
        y = s.sum(1)
        torch.sigmoid(y)
        return y

    fc, spikes, _ = _measure(also_a_weight_op, mode, monkeypatch, kinds=("reduce", "linear"))
    events = sum(float(s.sum()) for s in spikes)
    assert sorted((c["kind"], c["category"], c["synops"]) for c in fc) == \
        [("linear", "spike_sums", events * OUT), ("reduce", "spikes", events)]

    # a sum of amplitudes, a sum of sums: their kind reaches the reduce consumer
    for op, reaching in ((lambda s: (s * 2.0).sum(1), ("graded", "scaled")),
                         (lambda s: (s + _flip(s)).sum(1), ("spike_sums", "count"))):
        fc, spikes, _ = _measure(lambda s, op=op: torch.sigmoid(op(s)), mode, monkeypatch,
                                 kinds=("reduce",))
        assert [(c["category"], c["values"]) for c in fc] == [reaching]

    def diamond(s):  # the sum reaches a sigmoid past a node the walk meets twice
        y = s.sum(1)
        w = y.clone()
        c = y + y * 2.0
        torch.sigmoid(w)
        return c

    fc, spikes, _ = _measure(diamond, mode, monkeypatch, kinds=("reduce",))
    events = sum(float(s.sum()) for s in spikes)
    assert [(c["kind"], c["synops"]) for c in fc] == [("reduce", events)]

    # a max pool of the sum is a new source: the sum costs its adds
    fc, spikes, _ = _measure(lambda s: F.max_pool2d(s.mean(1), 2), mode, monkeypatch,
                             kinds=("reduce",))
    events = sum(float(s.sum()) for s in spikes)
    assert [(c["kind"], c["op"], c["synops"]) for c in fc] == [("reduce", "mean", events)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dense", [(2, 4, 6, 6), (2, 1, 6, 6)], ids=["same", "broadcast"])
def test_events_added_into_a_real_tensor_cost_one_add_each(dense, mode, monkeypatch):
    """Spikes added into a dense tensor (a residual stream): one add per event and
    per output element it reaches; here the events of one channel (broadcast over
    four when the dense tensor has four)."""
    fc, spikes, _ = _measure(lambda s: torch.ones(dense) + s[:, :1], mode, monkeypatch,
                             kinds=("accumulate",))
    reach = dense[1]  # output channels each event of s[:, :1] reaches
    events = sum(float(s[:, :1].sum()) for s in spikes) * reach
    assert [(c["kind"], c["op"], c["synops"]) for c in fc] == [("accumulate", "add", events)]
    assert events > 0


@pytest.mark.parametrize("mode", MODES)
def test_a_transposed_convolution_of_spikes_charges_each_event_its_fan_out(mode, monkeypatch):
    weight = torch.rand(4, 3, 3, 2, generator=torch.Generator().manual_seed(5))

    def op(s):
        return F.conv_transpose2d(s, weight, stride=2, padding=1, output_padding=1)

    fc, spikes, _ = _measure(op, mode, monkeypatch, kinds=("linear",), scope=None)
    ones = torch.ones(weight.shape, dtype=torch.float64)
    pairs = sum(float(F.conv_transpose2d((s != 0).double(), ones, stride=2, padding=1,
                                         output_padding=1).sum()) for s in spikes)
    convs = [c for c in fc if c["op"] == "conv"]
    assert [c["synops"] for c in convs] == [pairs] and pairs > 0
    # the same op dense: every input element x 3 output channels x a 3 x 2 kernel
    assert convs[0]["dense_macs"] == 2 * (2 * 4 * 6 * 6) * 3 * (3 * 2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("left,right", [(lambda s: s + _flip(s), lambda s: s),
                                        (lambda s: s, lambda s: s + _flip(s)),
                                        (lambda s: s, lambda s: s)],
                         ids=["sums@spikes", "spikes@sums", "spikes@spikes"])
def test_a_product_of_two_event_tensors_costs_one_add_per_pair_that_meets(left, right, mode,
                                                                      monkeypatch):
    """``A @ B`` with events on both sides, one of them summed or neither: the
    pairs of non-zeros that meet, (A != 0) @ (B != 0) summed, computed here."""
    def op(s):
        return left(s).flatten(2) @ right(s).flatten(2).transpose(-1, -2)

    fc, spikes, _ = _measure(op, mode, monkeypatch, kinds=("product",))
    pairs = sum(float(((left(s) != 0).double().flatten(2)
                       @ (right(s) != 0).double().flatten(2).transpose(-1, -2)).sum())
                for s in spikes)
    assert len(fc) == 1 and fc[0]["synops"] == pairs > 0
    s = spikes[0]
    summed = not (torch.equal(left(s), s) and torch.equal(right(s), s))  # a sum on a side
    assert fc[0]["category"] == ("spike_sums" if summed else "spikes")
    assert fc[0]["op"] == "bmm" and fc[0]["dense_macs"] == 2 * (2 * 4 * 4) * 36  # [2, 4, 4] x K


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", ["bmm", "baddbmm", "addmm", "mm", "weights@spikes"])
def test_a_batched_weight_op_of_spikes_charges_each_event_its_row_of_weights(form, mode,
                                                                            monkeypatch):
    """Spikes [2, 4, 36] (batched) or [8, 36] times weights [.., 36, 5]: each
    event meets 5 weights; the same op dense is 5 x 36 per output row."""
    weight = torch.rand(36, 5, generator=torch.Generator().manual_seed(6))
    bias = torch.rand(5, generator=torch.Generator().manual_seed(7))
    ops = {"bmm": lambda s: torch.bmm(s.flatten(2), weight.expand(2, 36, 5)),
           "baddbmm": lambda s: torch.baddbmm(bias, s.flatten(2), weight.expand(2, 36, 5)),
           "addmm": lambda s: torch.addmm(bias, s.flatten(2).flatten(0, 1), weight),
           "mm": lambda s: torch.mm(s.flatten(2).flatten(0, 1), weight),
           # (weights on the left: [2, 5, 36] @ [2, 36, 4], each event meets 5 rows)
           "weights@spikes": lambda s: torch.bmm(weight.t().expand(2, 5, 36),
                                                 s.flatten(2).transpose(1, 2))}
    fc, spikes, _ = _measure(ops[form], mode, monkeypatch, scope=None)
    events = sum(float(s.sum()) for s in spikes)
    mine = [c for c in fc if c["op"] == form.replace("weights@spikes", "bmm")]
    assert [(c["synops"], c["dense_macs"]) for c in mine] == [(5 * events, 2 * 8 * 5 * 36)]
    assert events > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op,program", [
    (lambda s: s.flatten(2) @ s.flatten(2).transpose(-1, -2),
     ["source", "view.default", "transpose.int"]),
    (lambda s: s @ s.transpose(-1, -2), ["source", "transpose.int"]),
    (lambda s: s[:, :1] @ s.transpose(-1, -2), ["source", "transpose.int", "expand.default"]),
], ids=["3d", "4d", "broadcast"])
def test_a_product_replays_its_operands_without_matmul_s_own_copies(op, program, mode):
    """matmul folds its operands into ``bmm`` through expand, clone and
    ``_unsafe_view``, which only reshape the batch: the program that recomputes
    the operands each forward starts before them (an expand that broadcasts a
    row stays)."""
    plan = _plan_of(op, mode)
    (product,) = plan.products
    assert _ops_of(plan, product.program) == program


def _plan_of(op, mode: str = "no_grad"):
    """The plan the monitor builds for ``_Row(op)`` (one traced forward)."""
    model = _Row(op, op((_spikes(0) > 0.5).float()).numel())
    monitor = monitor_model(model, "p")
    with MODES[mode]():
        model(_spikes(1))
    plan = next(iter(monitor.topology.tallies.values())).plan
    monitor.detach()
    return plan


def _ops_of(plan, program: list) -> list:
    return [plan.nodes[i].kind if plan.nodes[i].kind == "source"
            else str(plan.nodes[i].func).removeprefix("aten.") for i in program]


@pytest.mark.parametrize("mode", MODES)
def test_a_derived_source_of_a_view_of_a_view_replays_from_the_source_storage(mode):
    """A max pool of a slice of a transposed source: the slice is recomputed
    from the source's storage in one step (the transpose between them is not
    replayed)."""
    plan = _plan_of(lambda s: F.max_pool2d(s.transpose(-1, -2)[:, :, 1:5], 2), mode)
    (leaf,) = [leaf for leaf in plan.leaves if leaf.kind == "derived"]
    assert _ops_of(plan, leaf.program) == \
        ["source", "slice.Tensor", "max_pool2d_with_indices.default"]


@pytest.mark.parametrize("mode", MODES)
def test_a_quotient_of_two_event_tensors_is_a_sink(mode, monkeypatch):
    """``a / b`` with events on both sides is no linear move of either: the
    layer after it is charged MACs, nothing is charged as synaptic operations."""
    fc, spikes, traced = _measure(lambda s: s / (_flip(s) + 1.0), mode, monkeypatch,
                                  kinds=("linear", "reduce", "accumulate"), scope=None)
    assert fc == [] and "div.Tensor" in traced and sum(float(s.sum()) for s in spikes) > 0


@pytest.mark.parametrize("op,dot", [(lambda s: s[0] * s[:, :, :1], True),
                                    (lambda s: (s * 2.0) * (_flip(s) * 3.0), False),
                                    (lambda s: F.max_pool2d(s, 2), False)],
                         ids=["spike-and", "amplitudes", "max-pool"])
def test_a_spike_and_is_counted_as_one_dot_of_its_operands(op, dot):
    """A derived source that is the AND of two binary spike tensors, and whose
    every map is constant, needs only sum(a * b) per forward: no program makes
    the product tensor (a product of amplitudes, a max pool: their programs)."""
    plan = _plan_of(op)
    (leaf,) = [leaf for leaf in plan.leaves if leaf.kind == "derived"]
    assert (leaf.dot_pair is not None) == dot
    assert (leaf.node in leaf.program) != dot  # (the product itself is not computed)
