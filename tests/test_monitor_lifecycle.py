"""One monitored forward from start to end, whatever happens in it: the traced
(discovery) forward counts like the others, a model that calls itself is one
forward, failures of ours at a forward's start, end or plan build leave the
model's forward alone, a detach in the middle of a forward leaves no hook, and
what the summary adds up (silent layers, graded MACs over plans, the memory
model's cost table) equals an independent figure."""

from __future__ import annotations

import dataclasses

import pytest

import torch
import torch.nn as nn
import spikingjelly  # noqa: F401

import dataflow_models as M  # noqa: E402
from bruteforce import brute_force  # noqa: E402
from exactness import check, forwards, is_neuron, references, returned_events  # noqa: E402

from opentelemetry_instrumentation_spikeformer.monitor import hooks, monitor_model  # noqa: E402
from opentelemetry_instrumentation_spikeformer.monitor import synops  # noqa: E402

ERROR = "spikeformer instrumentation error in "


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(ERROR)]


def _outputs(model, xs):
    """The model's outputs without a monitor (its state reset after each)."""
    out = []
    with torch.no_grad():
        for x in xs:
            out.append(model(x))
            M.reset(model)
    return out


def _run_unchanged(model, xs, expected, after=None):
    """Forwards whose outputs must be the unmonitored ones (``after``: checked
    after each)."""
    with torch.no_grad():
        for x, want in zip(xs, expected):
            assert torch.equal(model(x), want)
            M.reset(model)
            if after is not None:
                after()


def _hooked(model) -> list[str]:
    """Modules that still carry a hook of any kind."""
    return [name for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or hooks.taps_on(m)]


@pytest.mark.parametrize("name", ["residual_cnn", "two_maxpools", "rare_paths", "spikformer"])
def test_the_traced_forward_counts_like_the_others(name):
    """The first forward of an input shape is traced and counted from the traced
    outputs (captured pools recomputed once): over it and two more, every
    consumer, layer and category equals the brute force, every layer's spikes
    the non-zeros its module returned."""
    torch.manual_seed(3)
    if name == "spikformer":
        model, xs = M.spikformer(), [M.image(s) for s in range(3)]
    else:
        model = M.settle(getattr(M, name)(), M.small_input((2, 8, 8), 0, scale=3.0))
        xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(3)]
    monitor = monitor_model(model, "m")
    forwards(model, xs)
    snap = monitor.read(detail=True)
    monitor.detach()
    assert snap["forwards"] == 3 and snap["inferences"] == 3 * M.B
    check(snap, references(model, xs))
    spikes: dict[str, float] = {}
    for forward in returned_events(model, xs):
        for name, value in forward.items():
            spikes[name] = spikes.get(name, 0.0) + value
    rows = {r["layer"]: r["spikes"] for r in snap["layers"]}
    assert rows == spikes and sum(spikes.values()) > 0


class _Recursive(nn.Module):
    """Called with a list, it calls itself on each element: the root module's
    hooks run again inside its own forward."""

    def __init__(self):
        super().__init__()
        self.inner = M.repeated_steps()

    def forward(self, x):
        if isinstance(x, list):
            return torch.stack([self(part) for part in x])
        return self.inner(x)


def test_a_model_that_calls_itself_is_one_forward(caplog):
    torch.manual_seed(3)
    model = _Recursive()
    calls = [[M.small_input((2, 8, 8), 2 * s + i, scale=3.0) for i in range(2)]
             for s in range(3)]
    expected = _outputs(model, calls)
    monitor = monitor_model(model, "m")
    _run_unchanged(model, calls, expected)
    snap = monitor.read(detail=True)
    monitor.detach()
    assert snap["forwards"] == 3
    assert monitor.topology._depth == 0
    check(snap, references(model, calls))
    assert snap["totals"]["synops"] > 0 and not _errors(caplog)


@pytest.mark.parametrize("step", ["_start_forward", "_finish_forward"])
def test_a_failure_at_a_forwards_start_or_end_is_reported_once(step, monkeypatch, caplog):
    """Our failure is swallowed (the output the same), reported once by where it
    happened; that forward is not counted and the next ones are, exactly."""
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(5)]
    expected = _outputs(model, xs)
    monitor = monitor_model(model, "m")
    original = getattr(synops.Topology, step)

    def broken(*_args):
        raise RuntimeError("boom")

    for round_ in range(2):  # once on the traced forward, once on a counted one
        monkeypatch.setattr(synops.Topology, step, broken)

        def after():
            # no tracer of ours left on (it would trace the rest of the process)
            assert torch._C._len_torch_dispatch_stack() == 0
            assert monitor.topology.discovering is None

        _run_unchanged(model, xs[:2], expected[:2], after)
        monkeypatch.setattr(synops.Topology, step, original)
        assert monitor.topology._depth == 0 and monitor.topology.current is None
        if round_ == 0:  # the traced forwards our failure cut short: nothing planned
            assert monitor.read()["forwards"] == 0 and not monitor.topology.tallies
        monitor.reset()
        _run_unchanged(model, xs[2:], expected[2:])
        snap = monitor.read(detail=True)
        assert snap["forwards"] == 3, round_
        check(snap, references(model, xs[2:]))
    monitor.detach()
    where = "spike monitor forward start" if step == "_start_forward" else \
        "spike monitor forward end"
    assert _errors(caplog) == [f"{ERROR}{where} (the instrumented call is unaffected)"]


def test_a_plan_that_cannot_be_built_is_tried_three_times(monkeypatch, caplog):
    """A failing plan build leaves the forward alone and no tracer hook behind;
    after ``MAX_FAILED`` failures the model's new shapes are no longer traced
    (one warning), and nothing is counted."""
    from opentelemetry_instrumentation_spikeformer.monitor import plan

    built = []

    def broken(graph, signature):
        built.append(signature)
        raise RuntimeError("boom")

    monkeypatch.setattr(plan, "build", broken)
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(5)]
    expected = _outputs(model, xs)
    monitor = monitor_model(model, "m")
    sources = {name for name, m in model.named_modules() if is_neuron(m)}

    def after():
        assert set(_hooked(model)) <= sources | {""}  # the tracer's are gone

    _run_unchanged(model, xs, expected, after)
    snap = monitor.read()
    assert len(built) == synops.MAX_FAILED == 3
    assert snap["forwards"] == 0 and snap["totals"]["spikes"] == 0
    assert not monitor.topology.tallies
    warned = [r.getMessage() for r in caplog.records if "input shapes" in r.getMessage()]
    assert warned == ["spike monitor: more than 8 input shapes (or failed discovery); "
                      "forwards of new shapes are not counted"]
    assert _errors(caplog) == [f"{ERROR}spike monitor forward end "
                               "(the instrumented call is unaffected)"]
    monitor.detach()
    assert not _hooked(model)


@pytest.mark.parametrize("when", [0, 2])  # in the traced forward, in a counted one
def test_a_detach_inside_a_forward_leaves_no_hook(when, caplog):
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(4)]
    expected = _outputs(model, xs)
    monitor = monitor_model(model, "m")
    calls = []

    def detach_now(*_args):
        calls.append(1)
        if len(calls) == when + 1:
            monitor.detach()

    handle = model.c1.register_forward_pre_hook(detach_now)  # after l0 fired
    _run_unchanged(model, xs, expected)
    handle.remove()
    assert not _hooked(model) and not monitor.attached
    assert monitor.topology.discovering is None
    assert monitor.read()["forwards"] == when
    assert not _errors(caplog)


@pytest.mark.parametrize("name", ["repeated_steps", "spikformer"])
def test_forwards_under_inference_mode_count_the_same(name, caplog):
    """Under ``torch.inference_mode`` a dispatch mode sees composite ops (conv2d,
    linear, matmul) before their decomposition: the traced forward must still
    find every consumer, and give the same outputs; a read inside inference
    mode is the same read."""
    torch.manual_seed(3)
    if name == "spikformer":
        model, xs = M.spikformer(), [M.image(s) for s in range(3)]
    else:
        model, xs = M.repeated_steps(), [M.small_input((2, 8, 8), s, scale=3.0) for s in range(3)]
    expected = _outputs(model, xs)
    monitor = monitor_model(model, "m")
    with torch.inference_mode():  # inference tensors all through the forward
        for x, want in zip(xs, expected):
            assert torch.equal(model(x), want)
            M.reset(model)
        inside = monitor.read(detail=True)
    outside = monitor.read(detail=True)
    monitor.detach()
    assert inside == outside and inside["forwards"] == 3
    check(inside, references(model, xs))
    assert inside["totals"]["synops"] > 0 and not _errors(caplog)


def test_a_layer_consumed_but_silent_is_still_mapped():
    """``fanout`` says whether the layer's spikes have a known destination: a
    layer whose spikes a conv reads is ``exact`` even in forwards where it never
    fired; one whose spikes leave the model is ``none``."""
    torch.manual_seed(3)
    model = M.single_step_cnn()
    monitor = monitor_model(model, "m")
    forwards(model, [-torch.ones(M.B, 2, 8, 8)] * 2)  # below every threshold
    snap = monitor.read()
    monitor.detach()
    rows = {r["layer"]: r for r in snap["layers"]}
    assert snap["forwards"] == 2 and snap["totals"]["spikes"] == 0
    assert rows["l0"]["fanout"] == "exact" and rows["l1"]["fanout"] == "none"


def test_a_silent_layer_read_by_a_spike_product_is_still_mapped():
    """The owner of a spike x spike product (the operand that fires last, l1)
    has a known destination even when nothing fired."""
    torch.manual_seed(3)
    model = M.single_step_product()
    monitor = monitor_model(model, "m")
    forwards(model, [-torch.ones(M.B, 2, 8, 8)] * 2)
    snap = monitor.read(detail=True)
    monitor.detach()
    assert [c["kind"] for c in snap["consumers"]] == ["product"]
    assert snap["totals"]["spikes"] == 0 and snap["totals"]["synops"] == 0
    assert {r["layer"]: r["fanout"] for r in snap["layers"]}["l1"] == "exact"


class _GradedHead(nn.Module):
    """Two encoding convs on the input (a 3x3 and a 1x1), spikes through a
    sigmoid into a linear head: the head's MACs are driven by spikes but dense
    (``graded_macs``), the convs' are encoding MACs."""

    def __init__(self):
        super().__init__()
        self.c0 = M._seq(nn.Conv2d(2, 4, 3, padding=1))
        self.c0b = M._seq(nn.Conv2d(2, 4, 1))
        self.l0 = M._lif()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):  # [T, B, 2, 8, 8]
        return self.fc(torch.sigmoid(self.l0(self.c0(x) + self.c0b(x))).flatten(2))


def test_graded_and_encoding_macs_over_two_input_shapes():
    """Three forwards of two batch sizes (two plans): the head's MACs are its
    dense MACs (T x batch x 256 x 3 per forward); the convs' encoding MACs per
    sample and step are 4 x 64 x 2 x (9 + 1). A static image repeated over the
    T steps (the first plan's inputs) is encoded once, the other plan's
    per-step input at every step."""
    torch.manual_seed(3)
    model = M._excitatory(_GradedHead())
    images = [torch.rand(1, 2, 2, 8, 8) * 3 for _ in range(2)]
    xs = [images[0].expand(M.T, -1, -1, -1, -1).contiguous(),
          images[1].expand(M.T, -1, -1, -1, -1).contiguous(),
          torch.rand(M.T, 1, 2, 8, 8) * 3]
    monitor = monitor_model(model, "m")
    forwards(model, xs)
    snap = monitor.read()
    monitor.detach()
    samples = M.T * (2 + 2 + 1)
    per_step = 4 * 64 * 2 * 10
    assert len(monitor.topology.tallies) == 2
    assert snap["counts"]["graded_macs"] == samples * 256 * 3
    assert snap["counts"]["encoding_macs_every_step"] == samples * per_step
    assert snap["counts"]["encoding_macs"] == (2 + 2 + M.T) * per_step
    assert snap["counts"]["nonbinary_weight_macs"] == samples * (256 * 3 + per_step)


def test_the_memory_estimate_follows_the_cost_table_it_is_given():
    """Lemaire's model is linear in its costs: every op and access cost doubled
    doubles every term, whichever table the plan was estimated with first."""
    from opentelemetry_instrumentation_spikeformer.monitor import lemaire

    torch.manual_seed(3)
    model = M.settle(M.residual_cnn(), M.small_input((2, 8, 8), 0))
    monitor = monitor_model(model, "m")
    forwards(model, [M.small_input((2, 8, 8), s) for s in range(2)])
    double = dataclasses.replace(
        lemaire.COST, e_add_pj=2 * lemaire.COST.e_add_pj, e_mul_pj=2 * lemaire.COST.e_mul_pj,
        breakpoints=tuple((c, 2 * pj) for c, pj in lemaire.COST.breakpoints))
    runs = [synops.summarize(monitor.topology, monitor.layers, lemaire_cost=cost)["memory"]
            for cost in (lemaire.COST, double, lemaire.COST)]
    monitor.detach()
    base, doubled, again = runs
    assert synops.summarize(monitor.topology, monitor.layers)["consumers"] == []  # not asked
    assert again == base and base["total_pj"] > 0
    for key, value in base.items():
        if key.endswith("_pj"):
            assert doubled[key] == pytest.approx(2 * value, rel=1e-12), key
    assert doubled["counts"] == base["counts"]


class _HookEncoded(nn.Module):
    """An IF encoder the model does not call itself: a forward pre-hook of the
    user's turns the input into spikes with it before the forward runs."""

    def __init__(self):
        super().__init__()
        from spikingjelly.activation_based import neuron

        self.enc = neuron.IFNode(step_mode="m")
        self.c0 = M._seq(nn.Conv2d(2, 4, 3, padding=1))
        self.l0 = M._lif()
        self.c1 = M._seq(nn.Conv2d(4, 4, 1))
        self.l1 = M._lif()

    def forward(self, x):  # [T, B, 2, 8, 8], spikes by then; returns spikes
        return self.l1(self.c1(self.l0(self.c0(x))))


def test_a_users_hooks_on_the_model_are_inside_its_forward(caplog):
    """Our hooks on the model run before the user's: what a user's pre-hook
    computes (an encoder applied to the input) is part of the forward, counted;
    a user's forward hook that changes the returned spikes in place runs after
    they were counted as the layer returned them."""
    torch.manual_seed(3)
    model = M._excitatory(_HookEncoded())
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(3)]
    encode = model.register_forward_pre_hook(lambda m, args: (m.enc(args[0]),))
    returned = []

    def halve(_m, _args, out):
        returned.append(float((out != 0).sum()))
        out.mul_(0.5)  # the user's own post-processing, in place

    post = model.register_forward_hook(halve)
    monitor = monitor_model(model, "m")
    forwards(model, xs)
    snap = monitor.read(detail=True)
    monitor.detach()
    post.remove()
    refs = references(model, xs)  # the encoder through the user's pre-hook again
    encode.remove()
    assert snap["forwards"] == 3
    check(snap, refs)
    rows = {r["layer"]: r for r in snap["layers"]}
    assert rows["enc"]["synops"] > 0  # the encoder's spikes reach c0: SOPs, not MACs
    assert rows["l1"]["spikes"] == sum(returned) > 0
    assert not _errors(caplog)


def test_a_failure_while_giving_up_a_traced_forward_is_reported_too(monkeypatch, caplog):
    """Our failure at a traced forward's end, and another while the trace is
    given up (its hooks cannot be removed): the forward's output is the same,
    the tracer is off, each failure reported once by where it happened."""
    from opentelemetry_instrumentation_spikeformer.monitor import dataflow

    def broken(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(synops.Topology, "_finish_forward", broken)
    monkeypatch.setattr(dataflow.Graph, "uninstall", broken)
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(2)]
    expected = _outputs(model, xs)
    monitor = monitor_model(model, "m")

    def after():
        assert torch._C._len_torch_dispatch_stack() == 0

    _run_unchanged(model, xs, expected, after)
    monkeypatch.undo()
    monitor.detach()
    assert _errors(caplog) == [f"{ERROR}{where} (the instrumented call is unaffected)"
                               for where in ("spike monitor forward end",
                                             "spike monitor discovery end")]


def test_plan_builds_that_fail_and_succeed_count_only_the_failures(monkeypatch, caplog):
    """Builds fail for batch sizes 1, 2, 3 and succeed for 4: a plan that stands
    does not add to the failures, so the third failure (batch 3, after the plan
    of 4) is the last build tried; forwards without any spiking layer firing
    (nothing to plan) count as failures too."""
    from opentelemetry_instrumentation_spikeformer.monitor import plan

    built = []
    build = plan.build

    def flaky(graph, signature):
        built.append(signature[0][0][1])
        if signature[0][0][1] != 4:
            raise RuntimeError("boom")
        return build(graph, signature)

    monkeypatch.setattr(plan, "build", flaky)
    torch.manual_seed(3)
    model = M.repeated_steps()
    monitor = monitor_model(model, "m")
    forwards(model, [torch.rand(M.T, b, 2, 8, 8) * 3 for b in (1, 2, 4, 4, 3, 5)])
    snap = monitor.read()
    monitor.detach()
    assert built == [1, 2, 4, 3] and snap["forwards"] == 2
    assert [r.getMessage() for r in caplog.records if "input shapes" in r.getMessage()] == \
        ["spike monitor: more than 8 input shapes (or failed discovery); "
         "forwards of new shapes are not counted"]


class _Skippable(nn.Module):
    """A forward that may run none of its spiking layers."""

    def __init__(self):
        super().__init__()
        self.inner = M.repeated_steps()

    def forward(self, x, skip=False):
        return x.sum() if skip else self.inner(x)


def test_forwards_where_no_spiking_layer_runs_are_traced_three_times_at_most(caplog):
    torch.manual_seed(3)
    model = _Skippable()
    monitor = monitor_model(model, "m")
    x = M.small_input((2, 8, 8), 0, scale=3.0)
    forwards(model, [x] * 3, skip=True)  # three traces that find nothing to count
    forwards(model, [x])
    snap = monitor.read()
    monitor.detach()
    assert monitor.topology._failed == 3 and not monitor.topology.tallies
    assert snap["forwards"] == 0
    assert any("or failed discovery" in r.getMessage() for r in caplog.records)


def test_a_reduction_the_model_returns_is_counted_from_the_traced_forward_on():
    torch.manual_seed(3)
    model = M.readout()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(3)]
    monitor = monitor_model(model, "m")
    forwards(model, xs)
    snap = monitor.read(detail=True)
    monitor.detach()
    check(snap, references(model, xs))
    reduce = [c for c in snap["consumers"] if c["kind"] == "reduce"]
    assert reduce and sum(c["synops"] for c in reduce) > 0


class _Keyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = M.repeated_steps()

    def forward(self, *, image):
        return self.inner(image)


def test_a_model_called_with_keyword_tensors_gets_a_plan_per_shape(caplog):
    """The input signature reads keyword arguments too: two batch sizes given as
    ``image=`` are two plans, every forward counted."""
    torch.manual_seed(3)
    model = _Keyword()
    xs = [torch.rand(M.T, b, 2, 8, 8) * 3 for b in (2, 1, 2)]
    monitor = monitor_model(model, "m")
    with torch.no_grad():
        for x in xs:
            model(image=x)
            M.reset(model)
    snap = monitor.read(detail=True)
    monitor.detach()
    assert len(monitor.topology.tallies) == 2 and snap["forwards"] == 3
    theirs = 0.0
    for x in xs:
        theirs += sum(v for *_, v in brute_force(model, is_neuron, image=x).by_consumer)
        M.reset(model)
    assert abs(snap["totals"]["synops"] - theirs) < 1e-6 * theirs and theirs > 0
    assert not _errors(caplog)


def test_a_failing_source_hook_never_breaks_the_forward(monkeypatch, caplog):
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    def broken(*_args):
        raise RuntimeError("boom")

    torch.manual_seed(3)
    model = M.shared_lif()  # a source called twice: counted through on_source
    x = M.small_input((2, 8, 8), 1, scale=3.0)
    (expected,) = _outputs(model, [x])
    monitor = monitor_model(model, "m")
    forwards(model, [x])
    monkeypatch.setattr(tally.Tally, "on_source", broken)
    with torch.no_grad():
        assert torch.equal(model(x), expected)
        M.reset(model)
    monitor.detach()
    assert _errors(caplog) == [f"{ERROR}spike monitor hook (the instrumented call is unaffected)"]
