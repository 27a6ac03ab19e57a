"""The discovery pass's boundaries (``monitor/dataflow.py``): what it must not
trace (other code's hooks, our own work, a second monitor's plan building),
what survives a submodule that raises, how inputs passed by keyword, an ignored
module fed by spikes, a max-pool module called twice and a source called by
method inside another call are seen. Each expected count is made here from
the spikes the model really emitted."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import encoding, functional, neuron

from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

nn = torch.nn
MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


def _inputs(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _record(module: nn.Module, into: list) -> None:
    module.register_forward_hook(lambda _m, _a, out: into.append(out.detach().clone()))


def _run(model: nn.Module, inputs: list, mode: str = "no_grad", errors: int = 0) -> dict:
    monitor = monitor_model(model, "m")
    with MODES[mode]():
        for x in inputs:
            model(x)
            functional.reset_net(model)
    snap = monitor.read(detail=True)
    assert [len(t.plan.errors) for t in monitor.topology.tallies.values()] == [errors]
    monitor.detach()
    return snap


def _consumers(snap: dict) -> list:
    return sorted((c["scope"], c["kind"], c["synops"]) for c in snap["consumers"])


class Pair(nn.Module):
    """A neuron, a linear layer on its spikes (called by keyword if asked)."""

    def __init__(self, keywords: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.keywords = keywords
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        if self.keywords:
            return self.fc(input=self.sn(x=x))
        return self.fc(self.sn(x))


@pytest.mark.parametrize("mode", MODES)
def test_other_code_s_hooks_on_spikes_are_not_traced(mode):
    """A profiler's or user's hooks, registered before the monitor, run weight
    ops and sums on the spikes; the monitor charges only the model's own
    linear layer: three synapses per event."""
    ones = torch.ones(5, 6)
    model = Pair()
    spikes: list = []
    _record(model.sn, spikes)
    model.fc.register_forward_pre_hook(lambda _m, a: (F.linear(a[0], ones), a[0].sum()) and None)
    model.fc.register_forward_hook(lambda _m, a, _o: (F.linear(a[0], ones), a[0].sum()) and None)
    model.sn.register_forward_hook(lambda _m, _a, o: F.linear(o, ones).sum() and None)
    side = nn.Linear(6, 2)  # modules called inside hooks (nested hook windows)
    model.fc.register_forward_hook(lambda _m, a, _o: side(a[0]).sum() and None)
    model.sn.register_forward_hook(lambda _m, _a, o: model.fc(o).sum() and None)
    snap = _run(model, [_inputs(1, 2, 6), _inputs(2, 2, 6)], mode)
    events = sum(float(s.sum()) for s in spikes)
    assert events > 0
    assert _consumers(snap) == [("fc", "linear", 3 * events)]


class Fallback(nn.Module):
    """A submodule raises on the spikes and the model falls back (caught)."""

    def __init__(self, failing: nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.failing = failing
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        s = self.sn(x)
        try:
            s = self.failing(s)
        except (RuntimeError, ValueError):
            pass
        return self.fc(s)


class Raises(nn.Module):
    def forward(self, s):
        s.sum()  # an op before the failure
        raise ValueError("not today")


@pytest.mark.parametrize("failing", [Raises(), nn.Linear(4, 2), nn.Sequential(nn.Linear(4, 2))],
                         ids=["module", "linear", "nested"])
@pytest.mark.parametrize("mode", MODES)
def test_a_submodule_that_raises_inside_the_forward_leaves_the_rest_traced(failing, mode):
    """The hooks around a call that raises still close its window and scope: the
    linear layer after it is traced, in its own scope, with its SOPs."""
    model = Fallback(failing)
    spikes: list = []
    _record(model.sn, spikes)
    snap = _run(model, [_inputs(3, 2, 6), _inputs(4, 2, 6)], mode)
    events = sum(float(s.sum()) for s in spikes)
    assert events > 0
    assert [(c["scope"], c["kind"], c["synops"]) for c in snap["consumers"]
            if c["kind"] == "linear"] == [("fc", "linear", 3 * events)]
    assert snap["counts"]["encoding_macs"] == snap["counts"]["graded_macs"] == 0


class Attention(nn.Module):
    """A converted transformer's attention, called by keyword or by position."""

    def __init__(self, keywords: bool) -> None:
        super().__init__()
        from spikingjelly.activation_based.ann2snn import operators as ops

        torch.manual_seed(0)
        self.keywords = keywords
        self.a = neuron.IFNode(step_mode="m", v_threshold=0.5)
        self.b = neuron.IFNode(step_mode="m", v_threshold=0.7)
        self.mha = ops.TDMultiheadAttention(6, 2)

    def forward(self, x):
        a, b = self.a(x), self.b(x * 0.8)
        if self.keywords:
            return self.mha(query_seq=a, key_seq=b, value_seq=b)[0]
        return self.mha(a, b, b)[0]


def test_layers_called_by_keyword_are_traced_like_layers_called_by_position():
    model = Pair(keywords=True)
    spikes: list = []
    _record(model.sn, spikes)
    snap = _run(model, [_inputs(21, 2, 6), _inputs(22, 2, 6)])
    events = sum(float(s.sum()) for s in spikes)
    assert events > 0
    assert _consumers(snap) == [("fc", "linear", 3 * events)]


def test_an_operator_called_by_keyword_is_charged_like_one_called_by_position():
    """``mha(query_seq=a, key_seq=b, value_seq=b)``: the keyword inputs reach the monitor;
    each event of the query meets ``embed`` weights, each of key = value twice."""
    snaps, spikes = {}, {}
    for keywords in (False, True):
        model = Attention(keywords)
        a: list = []
        b: list = []
        _record(model.a, a)
        _record(model.b, b)
        snaps[keywords] = _run(model, [_inputs(5, 2, 2, 3, 6)])
        spikes[keywords] = (sum(float(s.sum()) for s in a), sum(float(s.sum()) for s in b))
    assert spikes[True] == spikes[False] and min(spikes[True]) > 0
    events_a, events_b = spikes[True]
    expected = sorted([6 * events_a, 12 * events_b])
    for snap in snaps.values():
        assert sorted(c["synops"] for c in snap["consumers"] if c["kind"] == "linear") == expected


class Population(nn.Module):
    """An ignored module (spikingjelly's population encoder, real-valued fields)
    between the input or the spikes and a linear layer."""

    def __init__(self, feed: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.feed = feed
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.pop = encoding.PopEncoder(6, 2, 4, (0.0, 1.0), 0.5)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        s = self.sn(x)
        fields = {"input": x, "spikes": s, "real": torch.tanh(s + x)}[self.feed]
        return self.fc(self.pop(fields)), s


@pytest.mark.parametrize("feed,kind", [("input", "encoding_macs_every_step"),
                                       ("spikes", "graded_macs"), ("real", "graded_macs")])
def test_an_ignored_module_passes_on_whether_its_input_came_from_spikes(feed, kind):
    """The linear layer after it costs dense MACs: encoding MACs when it reads the
    model input only, graded MACs when anything upstream spiked (the spikes
    themselves or real values computed from them)."""
    model = Population(feed)
    snap = _run(model, [_inputs(6, 2, 6), _inputs(7, 2, 6)])
    macs = 2 * 4 * 2 * 12 * 3  # forwards x T x B x in x out
    other = "graded_macs" if kind != "graded_macs" else "encoding_macs_every_step"
    assert (snap["counts"][kind], snap["counts"][other]) == (macs, 0)


class SharedPool(nn.Module):
    """One max-pool module called on two neurons' spikes (and a module called
    twice on the same input: two captures of one module)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = neuron.IFNode(v_threshold=0.5)
        self.b = neuron.IFNode(v_threshold=0.8)
        self.c = neuron.IFNode(v_threshold=0.3)
        self.pool = nn.MaxPool2d(2)
        self.fa = nn.Linear(8, 3)
        self.fb = nn.Linear(8, 5)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        pa, pb = self.pool(self.a(x)), self.pool(self.b(x.flip(-1)))
        pc = self.pool(self.c(x.flip(-2)))
        return (self.fa(pa.flatten(1)) + self.fb(pb.flatten(1)).sum()
                + self.fc(pc.flatten(1)).sum())


@pytest.mark.parametrize("mode", MODES)
def test_a_max_pool_module_called_twice_charges_each_call_s_selected_events(mode):
    model = SharedPool()
    rec = {k: [] for k in "abc"}
    for k in "abc":
        _record(getattr(model, k), rec[k])
    snap = _run(model, [_inputs(8, 2, 2, 4, 4), _inputs(9, 2, 2, 4, 4)], mode)
    pooled = {k: sum(float(F.max_pool2d(s, 2).sum()) for s in v) for k, v in rec.items()}
    assert len(set(pooled.values())) == 3 and min(pooled.values()) > 0
    assert _consumers(snap) == [("fa", "linear", 3 * pooled["a"]),
                                ("fb", "linear", 5 * pooled["b"]),
                                ("fc", "linear", 2 * pooled["c"])]


class ConvPair(nn.Module):
    """A neuron, a convolution on its spikes (its plan runs a convolution)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(self.sn(x)).flatten(1)


class Outer(nn.Module):
    def __init__(self, inner: nn.Module, registered: bool) -> None:
        super().__init__()
        if registered:
            self.inner = inner
        else:  # called, but not a submodule: no hooks of the outer monitor on it
            self.hidden = [inner]
        self.sn = neuron.IFNode(v_threshold=0.1)
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        inner = self.inner if hasattr(self, "inner") else self.hidden[0]
        return self.fc(self.sn(inner(x)))


@pytest.mark.parametrize("registered", [True, False], ids=["submodule", "unregistered"])
def test_a_monitored_model_inside_another_is_counted_by_both_and_alone(registered):
    """The inner model's discovery pass, plan building and counting run inside
    the outer model's traced forward: the outer one traces the inner model's
    ops once (its forward), not the inner monitor's own work (the convolution
    that maps its events, its counts), and each monitor gets its own counts."""
    inner = ConvPair()
    outer = Outer(inner, registered)
    a: list = []
    b: list = []
    _record(inner.sn, a)
    _record(outer.sn, b)
    inner_monitor = monitor_model(inner, "inner")
    outer_monitor = monitor_model(outer, "outer")
    with torch.no_grad():
        for seed in (10, 11, 12):
            outer(_inputs(seed, 2, 1, 4, 4))
            functional.reset_net(outer)
            functional.reset_net(inner)
    inner_snap, outer_snap = inner_monitor.read(detail=True), outer_monitor.read(detail=True)
    inner_monitor.detach()
    outer_monitor.detach()
    ones = torch.ones(2, 1, 3, 3)
    ea = sum(float(F.conv2d(s, ones, padding=1).sum()) for s in a)  # (event, synapse) pairs
    eb = sum(float(s.sum()) for s in b)
    assert ea > 0 and eb > 0
    assert _consumers(inner_snap) == [("conv", "linear", ea)]
    assert inner_snap["counts"]["encoding_macs"] == inner_snap["counts"]["graded_macs"] == 0
    if registered:
        assert _consumers(outer_snap) == sorted([("fc", "linear", 4 * eb),
                                                 ("inner.conv", "linear", ea)])
        assert outer_snap["counts"]["graded_macs"] == 0
    else:  # the inner neuron is no source of the outer model: its convolution is MACs
        assert _consumers(outer_snap) == [("fc", "linear", 4 * eb)]
        assert outer_snap["counts"]["encoding_macs_every_step"] == 3 * 2 * 32 * 9
    assert outer_snap["counts"]["encoding_macs"] == (0 if registered else 3 * 2 * 32 * 9)


class Adds(nn.Module):
    """Spikes added to spikes (ACCounter's adds), and adds it does not count:
    spikes plus a constant, a dense tensor, or a sum of spikes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = neuron.IFNode(v_threshold=0.5)
        self.b = neuron.IFNode(v_threshold=0.8)
        self.c = neuron.IFNode(v_threshold=0.3)

    def forward(self, x):
        a, b, c = self.a(x), self.b(x.flip(-1)), self.c(x * 0.5)
        ab = a + b
        return [ab, ab + c, a + 1.0, 2.0 + b, x + c, a - c, torch.add(a, b, alpha=2)]


@pytest.mark.parametrize("mode", MODES)
def test_spike_adds_are_counted_where_both_operands_are_spikes_as_emitted(mode):
    """``census_spike_adds`` (spikingjelly's ACCounter convention: nnz(x) +
    nnz(y) per add of two spike tensors): a + b, a - c and the add with alpha;
    not a sum of spikes plus spikes, nor spikes and a constant or a real tensor."""
    model = Adds()
    rec = {k: [] for k in "abc"}
    for k in "abc":
        _record(getattr(model, k), rec[k])
    snap = _run(model, [_inputs(13, 2, 6), _inputs(14, 2, 6)], mode)
    nnz = {k: sum(float((s != 0).sum()) for s in v) for k, v in rec.items()}
    assert min(nnz.values()) > 0
    assert snap["counts"]["census_spike_adds"] == 2 * nnz["a"] + 2 * nnz["b"] + nnz["a"] \
        + nnz["c"]


def test_adds_of_spike_counts_are_no_spike_adds():
    """sinabs' multi-spike neurons emit counts: their sum is no add of two spike
    tensors (ACCounter's convention counts binary spikes only)."""
    import sinabs.layers as sl

    class Counts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = sl.IAFSqueeze(batch_size=2), sl.IAFSqueeze(batch_size=2)

        def forward(self, x):
            return self.a(x * 3.0) + self.b(x.flip(-1) * 3.0)

    model = Counts()
    rec: list = []
    _record(model.a, rec)
    snap = _run(model, [_inputs(25, 2 * 3, 6)])
    assert float(rec[0].max()) > 1  # counts, not binary
    assert snap["counts"]["census_spike_adds"] == 0


class Encoded(nn.Module):
    """A source the model calls by another name (``encode``): by the model
    itself, or inside the encoder's own forward."""

    def __init__(self, by_forward: bool) -> None:
        from spikingjelly.activation_based.ann2snn.qcfs import SignedQCFSSequenceEncoder

        super().__init__()
        torch.manual_seed(0)
        self.by_forward = by_forward
        self.encoder = SignedQCFSSequenceEncoder(scale=torch.full((6,), 0.25), time_steps=4)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        if self.by_forward:  # forward(value_seq) sums over time, then calls encode
            return self.fc(self.encoder(x.unsqueeze(0)))
        return self.fc(self.encoder.encode(x))


@pytest.mark.parametrize("by_forward", [False, True], ids=["encode", "forward"])
def test_a_source_called_by_method_is_one_source_wherever_it_is_called(by_forward):
    """Called by ``encode`` from the model or inside the encoder's forward (the
    tap fires inside the opaque call): one source, its events charged three
    synapses each by the linear layer."""
    model = Encoded(by_forward)
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(15))
    monitor = monitor_model(model, "enc")
    with torch.no_grad():
        model(x)
        model(x)
    snap = monitor.read(detail=True)
    monitor.detach()
    with torch.no_grad():
        encoded = model.encoder.encode(x)
    events = float((encoded != 0).sum())
    assert events > 0
    assert [(c["scope"], c["synops"]) for c in snap["consumers"] if c["kind"] == "linear"] == \
        [("fc", 2 * 3 * events)]
    assert len([r for r in snap["layers"] if r["layer"] == "encoder"]) == 1


class KeywordComposites(nn.Module):
    """Composite ops whose keyword-only arguments change their result: under
    ``inference_mode`` the tracer runs their decomposition itself."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.q = nn.Linear(8, 8)

    def forward(self, x):  # x: [B, 2, 4, 8]
        s = self.sn(x)
        q = self.q(s)
        attn = F.scaled_dot_product_attention(q, s, s, scale=0.05)
        return attn, s.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("mode", MODES)
def test_the_traced_forward_returns_what_the_bare_forward_returns(mode):
    """The discovery pass's forward (and a counted one) returns the same values,
    dtypes and memory layout as the model without a monitor."""
    model = KeywordComposites()
    x = _inputs(16, 2, 2, 4, 8)
    with MODES[mode]():
        bare = model(x)
        functional.reset_net(model)
        monitor = monitor_model(model, "kw")
        traced = model(x)
        functional.reset_net(model)
        counted = model(x)
    monitor.detach()
    for out in (traced, counted):
        for got, want in zip(out, bare):
            assert torch.equal(got, want)
            assert (got.dtype, got.stride()) == (want.dtype, want.stride())
    assert bare[1].stride() != bare[1].contiguous().stride()  # channels_last kept


class MeanToIgnored(nn.Module):
    """A mean of spikes read by an ignored module and by a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.pop = encoding.PopEncoder(6, 2, 4, (0.0, 1.0), 0.5)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        m = self.sn(x).mean(1, keepdim=True) * torch.ones(6)
        return self.pop(m), self.fc(m)


def test_a_mean_an_ignored_module_reads_costs_one_add_per_event():
    """The ignored module consumes the mean non-linearly: one add per event
    entering the mean, besides the linear layer's 6 x 3 synapses per event."""
    model = MeanToIgnored()
    spikes: list = []
    _record(model.sn, spikes)
    snap = _run(model, [_inputs(17, 2, 6), _inputs(18, 2, 6)])
    events = sum(float(s.sum()) for s in spikes)
    assert events > 0
    assert sorted((c["kind"], c["op"], c["synops"]) for c in snap["consumers"]) == \
        [("linear", "addmm", 18 * events), ("reduce", "mean", events)]


def test_a_sum_pool_on_the_model_input_moves_no_events():
    """sinabs' SumPool2d (an opaque module the monitor replays) on the raw input:
    nothing to route, the convolution after it costs encoding MACs."""
    import sinabs.layers as sl

    torch.manual_seed(0)
    model = nn.Sequential(sl.SumPool2d(2), nn.Conv2d(1, 2, 3, padding=1),
                          sl.IAFSqueeze(batch_size=2))
    x = _inputs(19, 2 * 3, 1, 4, 4)
    with torch.no_grad():
        bare = model(x)
    for layer in model.modules():
        if isinstance(layer, sl.StatefulLayer):
            layer.reset_states()
    monitor = monitor_model(model, "pool")
    with torch.no_grad():
        out = model(x)
    snap = monitor.read(detail=True)
    assert [t.plan.errors for t in monitor.topology.tallies.values()] == [[]]
    monitor.detach()
    assert torch.equal(out, bare)
    assert snap["consumers"] == [] and snap["counts"]["encoding_macs_every_step"] == 6 * 2 * 4 * 9


def test_a_failure_of_ours_in_a_hook_never_reaches_the_forward(monkeypatch, caplog):
    """Our module-boundary step raising (here: reading a linear layer's call):
    the forward returns what it returns without a monitor, the failure is
    reported once, and the layer's spikes are still charged."""
    from opentelemetry_instrumentation_spikeformer.monitor import dataflow as df

    def broken(self, module, args):
        raise RuntimeError("boom")

    monkeypatch.setattr(df.Graph, "_module_call", broken)
    model = Pair()
    spikes: list = []
    _record(model.sn, spikes)
    x = _inputs(20, 2, 6)
    with torch.no_grad():
        bare = model(x)
    functional.reset_net(model)
    spikes.clear()
    with caplog.at_level("WARNING"):
        snap = _run(model, [x, x], errors=1)
    events = sum(float(s.sum()) for s in spikes)
    assert events > 0
    assert _consumers(snap) == [("fc", "linear", 3 * events)]
    warnings = [r.getMessage() for r in caplog.records if "could not be traced" in r.getMessage()]
    assert len(warnings) == 1 and "Linear pre: RuntimeError: boom" in warnings[0], warnings


class RawAttention(nn.Module):
    """A converted attention on the raw input as query, key and value (one
    tensor three times), with or without an attention mask; a neuron beside it."""

    def __init__(self, masked: bool) -> None:
        from spikingjelly.activation_based.ann2snn import operators as ops

        super().__init__()
        torch.manual_seed(0)
        self.masked = masked
        self.sn = neuron.IFNode(step_mode="m", v_threshold=0.5)
        self.mha = ops.TDMultiheadAttention(6, 2, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):  # [T, B, L, 6]
        mask = {"attn_mask": torch.zeros(x.shape[2], x.shape[2], dtype=torch.bool)} \
            if self.masked else {}
        return self.mha(x, x, x, **mask)[0], self.fc(self.sn(x))


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
def test_an_attention_on_the_raw_input_costs_its_three_projections(masked):
    """Query, key and value projections of the one raw tensor: 3 x embed MACs per
    input element; a mask is no input of theirs. Inside: Q·Kᵀ and ·V (tokens x
    embed MACs per query element each) and the output projection (embed per
    element)."""
    model = RawAttention(masked)
    x = _inputs(23, 2, 2, 4, 6)
    snap = _run(model, [x])
    tokens, embed = x.shape[-2], x.shape[-1]
    inside = x.numel() * (2 * tokens + embed)
    assert snap["counts"]["encoding_macs_every_step"] == x.numel() * embed * 3 + inside
    assert [c["scope"] for c in snap["consumers"]] == ["fc"]


class RawOperators(nn.Module):
    """The combining ann2snn operators on real operands only (the raw input), a
    neuron beside them: no events, only the dense ops the ANN would run too."""

    def __init__(self) -> None:
        from spikingjelly.activation_based.ann2snn import operators as ops

        super().__init__()
        self.sn = neuron.IFNode(step_mode="m", v_threshold=0.5)
        self.sdpa = ops.TDScaledDotProductAttention()
        self.mm = ops.SNNMatrixOperator()
        self.ew = ops.SNNElementWiseProduct()

    def forward(self, x):  # [T, B, L, E]
        return (self.sdpa(x, x, x), self.mm(x, x.transpose(-1, -2)), self.ew(x, x[..., :1]),
                self.sn(x))


def test_operators_on_real_operands_cost_their_dense_macs():
    x = _inputs(29, 2, 3, 4, 5)
    snap = _run(RawOperators(), [x])
    rows, tokens, embed = x.numel() // x.shape[-1], x.shape[-2], x.shape[-1]
    sdpa = rows * tokens * embed * 2  # Q·Kᵀ, then ·V
    mm = rows * embed * tokens
    assert snap["counts"]["encoding_macs_every_step"] == sdpa + mm + x.numel()
    assert snap["consumers"] == []
    steps, batch = x.shape[:2]
    assert snap["counts"]["ann_macs"] == pytest.approx((sdpa + mm + x.numel()) / (steps * batch))


class RankedOperators(nn.Module):
    """Multi-step ``SNNMatrixOperator`` / ``SNNElementWiseProduct`` on operands
    of different ranks, which spikingjelly lines up after T (not from the
    right): events [T, B, L, E] against real [T, E, P] and [T, E]."""

    def __init__(self, steps: int, embed: int) -> None:
        from spikingjelly.activation_based.ann2snn import operators as ops

        super().__init__()
        gen = torch.Generator().manual_seed(5)
        self.sn = neuron.IFNode(step_mode="m", v_threshold=0.5)
        self.mm, self.ew = ops.SNNMatrixOperator(), ops.SNNElementWiseProduct()
        self.register_buffer("w", torch.rand(steps, embed, 3, generator=gen))
        self.register_buffer("v", torch.rand(steps, embed, generator=gen))

    def forward(self, x):
        s = self.sn(x)
        return self.mm(s, self.w), self.ew(s, self.v)


def test_operators_on_operands_of_different_ranks():
    steps, batch, tokens, embed = 3, 2, 4, 5
    model = RankedOperators(steps, embed)
    seen = []
    model.sn.register_forward_hook(lambda _m, _a, out: seen.append(out.detach().clone()))
    x = _inputs(31, steps, batch, tokens, embed) * 2
    snap = _run(model, [x])
    events = float((seen[0] != 0).sum())
    assert events > 0
    ours = sorted((c["op"], c["synops"], c["dense_macs"]) for c in snap["consumers"])
    assert ours == sorted([("matmul", events * 3, steps * batch * tokens * embed * 3),
                           ("ewise", events, steps * batch * tokens * embed)])
    assert snap["counts"]["ann_macs"] == pytest.approx(
        (steps * batch * tokens * embed * 4) / (steps * batch))


class Reuse(nn.Module):
    """Real values computed from spikes and dropped, then a tensor computed from
    the input alone (Python may give it the dropped tensor's id)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sn = neuron.IFNode(v_threshold=0.5)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        for _ in range(8):
            y = torch.tanh(self.sn(x) + 0.5)
            del y
            r = x * 2.0
            self.fc(r)
            del r
        return self.sn(x)


def test_a_tensor_from_the_input_is_never_taken_for_one_computed_from_spikes():
    """Ids of tensors downstream of spikes stay taken until the traced forward
    ends: a later input-only tensor is encoding MACs, every one of them."""
    model = Reuse()
    snap = _run(model, [_inputs(24, 2, 6)])
    assert snap["counts"]["encoding_macs_every_step"] == 8 * 2 * 6 * 3
    assert snap["counts"]["graded_macs"] == 0


class SelfAttention(nn.Module):
    """Spikes times their own transpose (SSA's Q K^T on spikes), no weights."""

    def __init__(self) -> None:
        super().__init__()
        self.sn = neuron.IFNode(step_mode="m", v_threshold=0.5)

    def forward(self, x):  # [T, B, N, D]
        s = self.sn(x)
        return (s @ s.transpose(-1, -2)).sum()


def test_the_ann_baseline_holds_spike_products():
    """The ANN doing the same multiplies the two operands densely: N x N x D
    MACs per sample (the product ran for T x B rows)."""
    snap = _run(SelfAttention(), [_inputs(26, 3, 2, 4, 6)])
    assert [c["kind"] for c in snap["consumers"]] == ["product"]
    assert snap["counts"]["ann_macs"] == 4 * 4 * 6


class EncodingAfterGraded(nn.Module):
    """A multi-step model whose graded MACs (real values computed from spikes)
    come before its encoding MACs (a linear layer on the input itself)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sn = neuron.IFNode(step_mode="m", v_threshold=0.5)
        self.fa = nn.Linear(6, 3)
        self.fb = nn.Linear(6, 4)

    def forward(self, x):  # [T, B, 6]
        return self.fa(torch.tanh(self.sn(x))), self.fb(x)


@pytest.mark.parametrize("frames,new", [("AAAA", 1), ("ABAB", 4), ("A000", 1), ("AB0B", 3)])
def test_encoding_macs_count_the_timesteps_that_bring_a_new_input(frames, new):
    """The input layer's MACs count once per timestep whose frame is new and not
    zero (a static image: once; frames A, B, A, B: four times), whatever MACs
    came before it in the forward."""
    images = {"A": _inputs(27, 2, 6), "B": _inputs(28, 2, 6), "0": torch.zeros(2, 6)}
    x = torch.stack([images[f] for f in frames])
    snap = _run(EncodingAfterGraded(), [x])
    counts = snap["counts"]
    assert counts["graded_macs"] == 4 * 2 * 6 * 3
    assert counts["encoding_macs_every_step"] == 4 * 2 * 6 * 4
    assert counts["encoding_macs"] == new * 2 * 6 * 4


def test_spikes_as_convolution_weights_are_priced_as_macs():
    """A convolution whose kernel is spikes (a dynamic filter): the weight op is
    dense MACs on real input, and the spikes are consumed as weights."""
    class DynamicFilter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.sn = neuron.IFNode(v_threshold=0.5)

        def forward(self, x):  # [1, 4, 3, 3] -> a kernel of one output channel
            return F.conv2d(torch.ones(2, 4, 6, 6), self.sn(x))

    snap = _run(DynamicFilter(), [_inputs(29, 1, 4, 3, 3)])
    assert snap["consumers"] == []
    assert snap["counts"]["graded_macs"] == 2 * 1 * 4 * 4 * (4 * 3 * 3)
    assert snap["counts"]["encoding_macs_every_step"] == 0


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_a_max_pool_module_s_output_is_read_not_recomputed(step_mode):
    """``layer.MaxPool2d`` returns the selected events (in multi-step mode
    through its own reshapes): the monitor reads them in the module's hook
    instead of running the pool again."""
    from spikingjelly.activation_based import layer

    class Pool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sn = neuron.IFNode(step_mode=step_mode, v_threshold=0.5)
            self.pool = layer.MaxPool2d(2, step_mode=step_mode)
            self.fc = nn.Linear(2 * 2 * 2, 3)

        def forward(self, x):
            return self.fc(self.pool(self.sn(x)).flatten(-3))

    model = Pool()
    monitor = monitor_model(model, "p")
    x = _inputs(30, *((3, 2) if step_mode == "m" else (2,)), 2, 4, 4)
    with torch.no_grad():
        model(x)
    plan = next(iter(monitor.topology.tallies.values())).plan
    monitor.detach()
    (leaf,) = [leaf for leaf in plan.leaves if leaf.kind == "derived"]
    assert leaf.capture is not None and leaf.capture[0]() is model.pool
    assert all(item is not leaf for items in plan.trigger.values() for _, item in items)
