"""The monitor's synops equal an independent brute-force count (tests/bruteforce.py:
every consumer re-run on its exact input with all-ones weights), per consumer
op, per layer and input category, and in total, on spikingjelly's three spiking
transformers and on small models that each isolate one dataflow case. The
first forward is the discovery pass; the compared forwards use other inputs."""

from __future__ import annotations

import collections

import math
from collections import defaultdict

import pytest

import torch
from torch.utils._python_dispatch import TorchDispatchMode
import spikingjelly  # noqa: F401

import dataflow_models as M  # noqa: E402
from bruteforce import brute_force  # noqa: E402
from exactness import (REL, check, forwards, is_neuron, linear_synops,  # noqa: E402
                       measure, no_monitor_errors, references, rel, returned_events,
                       small_measured)

from opentelemetry_instrumentation_spikeformer.monitor import monitor_model  # noqa: E402

@pytest.fixture(scope="module", params=list(M.TRANSFORMERS))
def transformer(request):
    model = M.TRANSFORMERS[request.param]()
    return request.param, measure(model, M.image(0), [M.image(1), M.image(2)])


def test_transformers_exact(transformer):
    name, (snap, refs) = transformer
    totals = check(snap, refs)
    assert totals["spikes"] > 1e5
    assert snap["forwards"] == 2 and snap["inferences"] == 2 * M.B
    kinds = {c["kind"] for c in snap["consumers"] if c["synops"] > 0}
    expected = {"spikformer": {"linear", "product"}, "sdt": {"linear", "reduce"},
                "qkformer": {"linear", "product", "reduce"}}[name]
    assert expected <= kinds  # SSA spike @ spike; SDSA / QKA adds into neurons


def test_residual_cnn_exact():
    torch.manual_seed(1)
    model = M.settle(M.residual_cnn(), M.small_input((2, 8, 8), 0))
    snap, refs = measure(model, M.small_input((2, 8, 8), 0),
                         [M.small_input((2, 8, 8), s) for s in (1, 2)])
    check(snap, refs)
    rows = {r["layer"]: r for r in snap["layers"]}
    # lif0 reaches c1 directly and, through the SEW sum with lif2, the strided conv
    assert rows["lif0"]["synops_by_input"]["spikes"] > 0
    assert rows["lif0"]["synops_by_input"]["spike_sums"] > 0
    assert rows["lif3"]["synops_by_input"]["spike_sums"] > 0  # avg pool -> fc


def test_qkv_fanout_block_exact():
    torch.manual_seed(2)
    model = M.settle(M.qkv_block(), M.small_input((4, 6), 0, scale=3.0))
    snap, refs = measure(model, M.small_input((4, 6), 0, scale=3.0),
                         [M.small_input((4, 6), s, scale=3.0) for s in (1, 2)])
    check(snap, refs)
    convs = [c for c in snap["consumers"] if c["kind"] == "linear" and c["op"] == "conv"]
    fed_by_lif_in = [c for c in convs if c["scope"].split(".")[0] in ("q", "k", "v", "proj")]
    assert len(fed_by_lif_in) == 4 and all(c["synops"] > 0 for c in fed_by_lif_in)
    assert any(c["kind"] == "product" and c["synops"] > 0 for c in snap["consumers"])


def test_overlapping_maxpool_exact():
    torch.manual_seed(3)
    model = M.settle(M.overlap_maxpool(), M.small_input((2, 9, 9), 0))
    inputs = [M.small_input((2, 9, 9), s) for s in (1, 2)]
    snap, refs = measure(model, M.small_input((2, 9, 9), 0), inputs)
    check(snap, refs)
    # only the selected input of each 3x3 window reaches c1 (a spike selected by
    # two overlapping windows reaches it twice): the max pool's own output
    selected = []
    handle = model.mp.body[0].register_forward_hook(
        lambda _m, _a, out: selected.append(float(out.sum())))
    with torch.no_grad():
        for x in inputs:
            model(x)
            M.reset(model)
    handle.remove()
    conv = next(c for c in snap["consumers"] if c["scope"].startswith("c1"))
    assert conv["events_in"] == sum(selected) > 0


@pytest.mark.parametrize("out_hw", [(1, 1), (3, 3)])  # (3, 3) on 8x8: overlapping windows
def test_adaptive_avgpool_linear_exact(out_hw):
    torch.manual_seed(4)
    model = M.settle(M.adaptive_head(out_hw), M.small_input((2, 8, 8), 0))
    snap, refs = measure(model, M.small_input((2, 8, 8), 0),
                         [M.small_input((2, 8, 8), s) for s in (1, 2)])
    check(snap, refs)
    if out_hw == (1, 1):  # each spike reaches the 5 outputs once: no 64x over-count
        row = {r["layer"]: r for r in snap["layers"]}["l0"]
        assert row["synops"] == row["spikes"] * 5


def test_rare_paths_exact():
    """A functional max pool of a concatenation of spikes, a product with a
    spike-sum operand and one whose batch rows are shaped differently."""
    _model, (snap, refs) = small_measured(M.rare_paths)
    check(snap, refs)
    products = {c["category"]: c["synops"] for c in snap["consumers"] if c["kind"] == "product"}
    assert products["spike_sums"] > 0 and products["spikes"] > 0
    pooled = next(c for c in snap["consumers"] if c["scope"].startswith("c1"))
    assert pooled["synops"] > 0  # reached only through the recomputed max pool


def test_captured_max_pools_exact(caplog):
    """Two pool modules, one called three times (twice on spikes), and a spike
    AND of a captured output: every call counted at its own place, no error."""
    _model, (snap, refs) = small_measured(M.two_maxpools)
    check(snap, refs)
    convs = linear_synops(snap)
    assert all(convs[name] > 0 for name in ("c1", "c2", "c3", "c4")), convs
    assert no_monitor_errors(caplog)


@pytest.mark.parametrize("measured", [lambda: small_measured(M.rare_paths),
                                      lambda: small_measured(M.two_maxpools),
                                      lambda: small_measured(M.adaptive_head),
                                      lambda: (None, measure(M.qkformer(), M.image(0),
                                                             [M.image(1)]))],
                         ids=["rare_paths", "two_maxpools", "one_segment", "qkformer"])
def test_counts_that_could_pass_float32_are_kept_in_float64(measured, monkeypatch):
    """Segments whose bound reaches 2**24 are summed in float64 (and leave the
    float32 fast path): here every segment is, and the counts stay exact (also
    where that is a single count: ``adaptive_head`` has one layer, one scalar)."""
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    monkeypatch.setattr(tally, "F32_EXACT", 1.0)
    _model, (snap, refs) = measured()
    check(snap, refs)
    assert snap["totals"]["synops"] > 0


@pytest.mark.parametrize("measured,limit,largest", [
    (lambda: small_measured(M.rare_paths), 0, 1 << 16),
    (lambda: small_measured(M.rare_paths), 4096, 1 << 16),
    (lambda: small_measured(M.two_maxpools), 4096, 1 << 16),
    (lambda: (None, measure(M.qkformer(), M.image(0), [M.image(1)])), 40000, 1 << 16),
    (lambda: (None, measure(M.qkformer(), M.image(0), [M.image(1)])), 1 << 20, 1024)],
    ids=["rare_paths-none", "rare_paths-some", "two_maxpools-some", "qkformer-some",
         "qkformer-small-ones"])
def test_outputs_counted_in_their_hooks_and_at_the_end_alike(measured, limit, largest,
                                                             monkeypatch):
    """Sources past ``DEFER_ELEMENTS`` in all, or of ``DEFER_MAX_ELEMENTS`` or
    more each, are reduced in their hooks, the others at the end of the forward;
    mixed (products, captures and derived leaves between them), the counts stay
    exact."""
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    monkeypatch.setattr(tally, "DEFER_ELEMENTS", limit)
    monkeypatch.setattr(tally, "DEFER_MAX_ELEMENTS", largest)
    _model, (snap, refs) = measured()
    check(snap, refs)
    assert snap["totals"]["synops"] > 0


@pytest.mark.parametrize("largest", [0, 1 << 30], ids=["operands-summed-first", "products"])
@pytest.mark.parametrize("name", ["sdt", "qkformer"])
def test_spike_and_spike_sums_exact_either_way(name, largest, monkeypatch):
    """A spike AND spike (SDSA's q * k, QKFormer's token mask * k) is summed as
    the product itself up to ``DOT_BROADCAST_MAX`` products, else with each
    operand summed first over the dims the other is broadcast along: exact both
    ways."""
    from opentelemetry_instrumentation_spikeformer.monitor import plan, tally

    monkeypatch.setattr(plan, "DOT_BROADCAST_MAX", largest)
    used = []
    derived = tally.Tally._derived

    def spy(self, leaf):
        if leaf.dot_pair is not None:
            used.append(leaf.dot_dims[:2])
        return derived(self, leaf)

    monkeypatch.setattr(tally.Tally, "_derived", spy)
    snap, refs = measure(M.TRANSFORMERS[name](), M.image(0), [M.image(1)])
    check(snap, refs)
    assert used and all(dims == ((), ()) for dims in used) == bool(largest)


def test_which_outputs_wait_for_the_end_of_the_forward(monkeypatch):
    """In call order, an output of fewer than ``DEFER_MAX_ELEMENTS`` elements
    waits for the end of the forward while the waiting ones add up to at most
    ``DEFER_ELEMENTS``; a larger output is reduced in its hook and takes none of
    that room. (Speed only: the counts are the same either way, tested above.)"""
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    largest, room = 2048, 512 + 256 + 1024 + 1024
    monkeypatch.setattr(tally, "DEFER_MAX_ELEMENTS", largest)
    monkeypatch.setattr(tally, "DEFER_ELEMENTS", room)
    model = M.qkformer()
    monitor = monitor_model(model, "q")
    with torch.no_grad():
        model(M.image(0))
    t = next(iter(monitor.topology.tallies.values()))
    sizes = [math.prod(t.shapes[indices[0]]) for indices in t.sources_of.values()]
    waits = [t.fast[module_id][5] for module_id in t.sources_of]
    small = [i for i, size in enumerate(sizes) if size < largest]
    # the room is used up exactly by the first four small outputs; outputs of
    # exactly DEFER_MAX_ELEMENTS and larger ones come before them
    assert sum(sizes[i] for i in small[:4]) == room and len(small) > 4
    assert largest in sizes[:small[3]] and max(sizes[:small[0]]) > room
    assert [i for i, w in enumerate(waits) if w] == small[:4]
    monitor.detach()


def test_per_element_counts_are_summed_over_leading_or_trailing_dims_only():
    """Per-element counts sum the dims their maps are constant along when those
    are leading or trailing; otherwise only their leading run, the other constant
    dims kept as counts (QKFormer's head splits: (0, 1, 3) of [T, B, C, N]). A
    reduction that skips over kept dims is up to 6x slower on a CPU; the counts
    are exact either way (the transformer tests above)."""
    from opentelemetry_instrumentation_spikeformer.monitor.plan import _fast_reduction, kept_shape

    assert _fast_reduction((0, 1, 3), (4, 8, 96, 4)) == (0, 1)
    assert _fast_reduction((0, 2, 3, 5), (64, 2, 3, 4, 5, 6)) == (0,)
    assert _fast_reduction((0, 1, 2), (4, 8, 8, 8, 8)) == (0, 1, 2)
    assert _fast_reduction((2, 3), (4, 8, 96, 4)) == (2, 3)
    assert _fast_reduction((1, 3), (64, 8, 96, 4)) == (1, 3)  # no leading run: as found
    assert _fast_reduction((), (4, 8)) == ()
    # kept counts bounded: at most KEPT_MAX, and an eighth of the output
    assert _fast_reduction((0, 1, 3), (8, 1, 96, 4)) == (0, 1)  # 384 of 3,072
    assert _fast_reduction((0, 1, 3), (4, 1, 96, 4)) == (0, 1, 3)  # 384 of 1,536
    assert _fast_reduction((0, 1, 3), (4, 64, 1024, 128)) == (0, 1, 3)  # 131,072 kept
    assert _fast_reduction((0, 1, 3), (4, 64, 512, 128)) == (0, 1)  # 65,536 kept
    model = M.qkformer()
    monitor = monitor_model(model, "q")
    with torch.no_grad():
        model(M.image(0))
    t = next(iter(monitor.topology.tallies.values()))
    monitor.detach()
    per = [leaf for leaf in t.plan.leaves if leaf.per_neuron]
    assert all(leaf.summed == _fast_reduction(leaf.summed, leaf.shape) for leaf in per)
    assert any(leaf.summed == (0, 1) and len(leaf.shape) == 4 for leaf in per)
    for leaf in per:
        assert {tuple(m.shape) for m in leaf.maps.values()} == {kept_shape(leaf)}
        assert t.segments[("events", leaf.node)].shape == kept_shape(leaf)


def test_a_failing_capture_hook_never_breaks_the_forward(monkeypatch, caplog):
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    model = M.settle(M.overlap_maxpool(), M.small_input((2, 9, 9), 0))
    x = M.small_input((2, 9, 9), 1)
    with torch.no_grad():
        expected = model(x)
    M.reset(model)

    def broken(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(tally.Tally, "on_capture", broken)
    monitor = monitor_model(model, "m")
    with torch.no_grad():
        for _ in range(2):  # the traced discovery pass, then a counted forward
            assert torch.equal(model(x), expected)
            M.reset(model)
    assert any("instrumentation error in spike monitor hook (" in r.getMessage()
               for r in caplog.records)
    monitor.detach()


@pytest.mark.parametrize("largest", [1 << 16, 0], ids=["kept", "in-taps"])
@pytest.mark.parametrize("variant", ["float64", "autograd"])
def test_residual_cnn_exact_in_float64_and_under_autograd(variant, largest, monkeypatch):
    """float64 spikes leave the float32 fast path; under autograd (monitoring
    while training) every spike tensor requires grad and is read detached:
    kept for the end of the forward, or counted in their taps."""
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    monkeypatch.setattr(tally, "DEFER_MAX_ELEMENTS", largest)
    torch.manual_seed(1)
    dtype = torch.float64 if variant == "float64" else torch.float32
    model = M.settle(M.residual_cnn(), M.small_input((2, 8, 8), 0)).to(dtype)
    inputs = [M.small_input((2, 8, 8), s).to(dtype) for s in (0, 1, 2)]
    snap, refs = measure(model, inputs[0], inputs[1:], grad=variant == "autograd")
    check(snap, refs)
    assert snap["totals"]["synops"] > 0


def test_spikes_added_into_a_dense_stream_are_accumulates():
    _model, (snap, refs) = small_measured(M.dense_residual)
    check(snap, refs)  # (the adds by category included)
    accumulates = [c for c in snap["consumers"] if c["kind"] == "accumulate"]
    assert accumulates and snap["counts"]["adds_by_input"]["spikes"] == \
        sum(c["synops"] for c in accumulates) > 0


def test_a_source_module_called_twice_is_counted_at_each_call():
    _model, (snap, refs) = small_measured(M.shared_lif)
    check(snap, refs)
    convs = linear_synops(snap)
    assert convs["c1"] > 0 and convs["c2"] > 0  # the first call's spikes, the second's


def test_shapes_that_change_under_the_same_signature_get_a_new_plan(caplog):
    """``repeat`` is an int: the same input signature, other shapes inside. The
    forward that finds its plan's shapes wrong is not counted (its plan is
    dropped); the next one is traced again and counted."""
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(4)]
    monitor = monitor_model(model, "m")
    forwards(model, xs[:1], repeat=1)
    monitor.reset()
    forwards(model, xs[1:], repeat=2)
    snap = monitor.read(detail=True)
    monitor.detach()
    check(snap, references(model, xs[2:], repeat=2))
    assert snap["forwards"] == 2 and snap["totals"]["synops"] > 0
    assert no_monitor_errors(caplog)


def _by_consumer(snap, refs):
    """Our SOPs and the brute force's, summed by (scope, kind, category) over plans."""
    ours, theirs = defaultdict(float), defaultdict(float)
    for c in snap["consumers"]:  # each plan lists its consumers
        ours[(c["scope"], c["kind"], c["category"])] += c["synops"]
    for ref in refs:
        for scope, kind, cat, value in ref.by_consumer:
            theirs[(scope, kind, cat)] += value
    return ours, theirs


def test_a_source_called_more_often_than_traced_gets_a_new_plan(caplog):
    """``steps`` is an int: the same signature, another number of calls of l0.
    A forward with more calls than its plan traced is not counted and the next
    is traced again; one with fewer is counted (what did not run costs nothing)."""
    torch.manual_seed(3)
    model = M.looped_steps()
    xs = [torch.rand(M.B, 2, 8, 8) * 3 for _ in range(4)]
    steps = [2, 3, 3, 2]
    monitor = monitor_model(model, "m")
    with torch.no_grad():
        for x, n in zip(xs, steps):
            model(x, steps=n)
            M.reset(model)
    snap = monitor.read(detail=True)
    monitor.detach()
    counted = [0, 2, 3]  # the second forward found a third call of l0
    refs = []
    for i in counted:
        refs.append(brute_force(model, is_neuron, xs[i], steps=steps[i]))
        M.reset(model)
    assert snap["forwards"] == 3
    ours = sum(c["synops"] for c in snap["consumers"])
    theirs = sum(v for ref in refs for *_, v in ref.by_consumer)
    assert rel(ours, theirs) < REL and theirs > 0
    fired = []
    handle = model.l0.register_forward_hook(lambda _m, _a, out: fired.append(float(out.sum())))
    with torch.no_grad():
        for i in counted:
            fired.append(None)
            model(xs[i], steps=steps[i])
            M.reset(model)
    handle.remove()
    assert fired.count(None) == 3 and len(fired) == 3 + 2 + 3 + 2
    spikes = {r["layer"]: r["spikes"] for r in snap["layers"]}["l0"]
    assert spikes == sum(f for f in fired if f is not None) > 0
    assert no_monitor_errors(caplog)


@pytest.mark.parametrize("largest", [1 << 16, 0], ids=["kept", "in-taps"])
def test_a_counted_layer_whose_shape_changes_gets_a_new_plan(largest, caplog, monkeypatch):
    """The same, past the first counted forward (the layer's buffers exist, its
    tap keeps or counts it directly): the forward with the new shape is not
    counted."""
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    monkeypatch.setattr(tally, "DEFER_MAX_ELEMENTS", largest)
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(5)]
    repeats = [1, 1, 2, 2, 2]
    monitor = monitor_model(model, "m")
    with torch.no_grad():
        for i, (x, r) in enumerate(zip(xs, repeats)):
            model(x, repeat=r)
            M.reset(model)
            if i == 2:  # right after the forward that found its plan stale: retired
                assert monitor.read()["forwards"] == 2
                assert not monitor.topology.tallies and len(monitor.topology._retired) == 1
    snap = monitor.read(detail=True)
    monitor.detach()
    refs = []
    for i in (0, 1, 3, 4):  # the third found the shapes changed
        refs.append(brute_force(model, is_neuron, xs[i], repeat=repeats[i]))
        M.reset(model)
    ours, theirs = _by_consumer(snap, refs)
    assert set(ours) == set(theirs)
    assert all(rel(ours[k], theirs[k]) < REL for k in theirs), (ours, dict(theirs))
    assert snap["forwards"] == 4 and snap["totals"]["synops"] > 0
    assert no_monitor_errors(caplog)


def test_spikes_laid_out_otherwise_get_a_new_plan():
    """Single-step neurons keep their input's layout: channels-last spikes under
    the same signature cannot be read through the plan's views. That forward
    is not counted; the next one is traced again and counted."""
    torch.manual_seed(3)
    model = M.single_step_product()
    gen = torch.Generator().manual_seed(7)
    xs = [torch.rand(M.B, 2, 8, 8, generator=gen) * 3 for _ in range(5)]
    xs[2:] = [x.contiguous(memory_format=torch.channels_last) for x in xs[2:]]
    monitor = monitor_model(model, "m")
    forwards(model, xs)
    snap = monitor.read(detail=True)
    monitor.detach()
    # the third forward found the layout changed
    refs = references(model, [xs[i] for i in (0, 1, 3, 4)])
    ours, theirs = _by_consumer(snap, refs)
    assert set(ours) == set(theirs)
    assert all(rel(ours[k], theirs[k]) < REL for k in theirs), (ours, dict(theirs))
    assert snap["forwards"] == 4
    assert any(c["kind"] == "product" and c["synops"] > 0 for c in snap["consumers"])


def test_a_branch_that_did_not_run_leaves_its_products_uncounted(caplog):
    """The spike AND and the product that need ``la`` count nothing in a
    forward that skipped it, and nothing fails."""
    torch.manual_seed(3)
    model = M.gated()
    xs = [M.small_input((2, 4, 4), s, scale=3.0) for s in range(3)]
    monitor = monitor_model(model, "m")
    forwards(model, xs[:1])
    monitor.reset()
    forwards(model, xs[1:2])
    model.skip = True
    forwards(model, xs[2:])
    snap = monitor.read(detail=True)
    monitor.detach()
    model.skip = False
    ref, = references(model, xs[1:2])
    expected = {(scope.split(".")[0], kind): v for scope, kind, _cat, v in ref.by_consumer}
    ours = {(c["scope"].split(".")[0], c["kind"]): c["synops"] for c in snap["consumers"]
            if c["kind"] in ("linear", "product")}
    assert ours == expected and all(v > 0 for v in ours.values())
    assert snap["forwards"] == 2
    assert no_monitor_errors(caplog)


def test_no_spike_tensor_outlives_its_forward():
    """The plan's recorded arguments (the list of a concatenation) must not keep
    a forward's spikes alive after it."""
    import gc
    import weakref

    torch.manual_seed(3)
    model = M.rare_paths()
    monitor = monitor_model(model, "m")
    alive = []
    handles = [getattr(model, name).register_forward_hook(
        lambda _m, _a, out: alive.append(weakref.ref(out))) for name in ("la", "lb")]
    for seed in range(3):  # the discovery pass, then counted forwards
        alive.clear()
        forwards(model, [M.small_input((2, 8, 8), seed, scale=3.0)])
        gc.collect()
        assert len(alive) == 2 and all(ref() is None for ref in alive), seed
    for handle in handles:
        handle.remove()
    assert monitor.read()["totals"]["synops"] > 0
    monitor.detach()


def test_graded_and_signed_sources_count_events_and_magnitude():
    """A graded source's events are its non-zeros and its magnitude the sum of
    |x|; a ternary neuron's events are |x| (one per -1 or +1). Both neurons
    are single-step, called T times per forward."""
    from spikingjelly.activation_based import neuron

    from bruteforce import BruteForce

    torch.manual_seed(0)
    model = M.graded_steps()
    outputs = {"liaf": [], "tern": []}
    handles = [getattr(model, name).register_forward_hook(
        lambda _m, _a, out, name=name: outputs[name].append(out.detach().clone()))
        for name in outputs]
    xs = [M.small_input((2, 8, 8), s, scale=3.0) - 1.0 for s in range(3)]
    snap, _ = measure(model, xs[0], xs[1:])
    for name in outputs:
        del outputs[name][:M.T]  # the discovery forward's
    refs = []
    for x in xs[1:]:
        bf = BruteForce(model, is_neuron,
                        graded_sources=lambda m: isinstance(m, neuron.LIAFNode))
        bf.run(x)
        refs.append(bf)
        M.reset(model)
    for handle in handles:
        handle.remove()
    check(snap, refs)
    rows = {r["layer"]: r for r in snap["layers"]}
    liaf = torch.stack(outputs["liaf"][:2 * M.T])
    tern = torch.stack(outputs["tern"][:2 * M.T])
    assert set(torch.unique(tern).tolist()) == {-1.0, 0.0, 1.0}
    assert rows["liaf"]["output"] == "graded" and rows["tern"]["output"] == "signed"
    assert rows["liaf"]["spikes"] == float((liaf != 0).sum()) > 0
    assert rows["liaf"]["magnitude"] == pytest.approx(float(liaf.double().abs().sum()), rel=1e-6)
    assert rows["liaf"]["magnitude"] != rows["liaf"]["spikes"]
    assert rows["tern"]["spikes"] == rows["tern"]["magnitude"] == float(tern.abs().sum()) > 0


@pytest.mark.parametrize("start", [1, 3])
def test_spikes_changed_in_place_after_their_layer(start, caplog):
    """Small outputs are reduced at the end of the forward: one the model changes
    in place after its layer returned it (here from the ``start``-th forward on)
    must still be counted as returned. A forward where that is first seen is not
    counted; from then on the layer is counted in its hook."""
    torch.manual_seed(3)
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(5)]
    model = M.inplace_spikes(start)
    monitor = monitor_model(model, "m")
    forwards(model, xs)
    snap = monitor.read()
    monitor.detach()
    twin = M.inplace_spikes(start)
    twin.load_state_dict(model.state_dict())
    per_forward = returned_events(twin, xs)
    counted = [f for i, f in enumerate(per_forward) if i + 1 != start]
    assert snap["forwards"] == len(xs) - 1
    rows = {r["layer"]: r for r in snap["layers"]}
    for name in ("l0", "l1"):
        assert rows[name]["spikes"] == sum(f[name] for f in counted) > 0, name
    assert no_monitor_errors(caplog)


def _summary(model, inputs):
    """``synops.summarize`` of a fresh monitor over these forwards."""
    from opentelemetry_instrumentation_spikeformer.monitor import synops

    monitor = monitor_model(model, "m")
    forwards(model, inputs)
    summary = synops.summarize(monitor.topology, monitor.layers)
    names = {id(layer): layer.name for layer in monitor.layers}
    monitor.detach()
    return summary, names


def _flat(summary, names):
    """Every number of a summary, by a readable key."""
    out = {}
    for key, value in summary["totals"].items():
        for k, v in (value.items() if isinstance(value, dict) else [("", value)]):
            out[f"totals.{key}.{k}"] = float(v)
    for layer_id, row in summary["rows"].items():
        for key in ("spikes", "magnitude", "synops", "neuron_steps", "timesteps", "forwards",
                    "sample_steps"):
            out[f"{names[layer_id]}.{key}"] = float(row[key])
        for cat, v in row["synops_by_input"].items():
            out[f"{names[layer_id]}.synops.{cat}"] = float(v)
    return out


@pytest.mark.parametrize("name", ["sdt", "qkformer"])
def test_totals_over_forwards_and_input_shapes_add_up(name):
    """Three forwards, two of one batch size and one of another (two plans): every
    total and per-layer number equals the sum of three one-forward monitors'
    (each pinned to a brute force by the tests above)."""
    import copy

    base = M.TRANSFORMERS[name]()
    inputs = [M.image(1), M.image(2), M.image(3, batch=1)]
    together = _flat(*_summary(copy.deepcopy(base), inputs))
    apart = defaultdict(float)
    for x in inputs:
        for key, value in _flat(*_summary(copy.deepcopy(base), [x])).items():
            apart[key] += value
    assert together["totals.forwards."] == 3
    assert all(v >= 0 for v in together.values())
    layers = {k.removesuffix(".sample_steps") for k in together if k.endswith(".sample_steps")}
    assert len(layers) > 5
    for layer in layers:  # (B + B + 1) samples x T steps; 3 forwards of T steps
        assert together[f"{layer}.sample_steps"] == (2 * M.B + 1) * M.T, layer
        assert together[f"{layer}.timesteps"] == 3 * M.T and together[f"{layer}.forwards"] == 3
    assert together["totals.ann_macs."] > 0 and together["totals.encoding_macs."] > 0
    assert together["totals.nonbinary_weight_macs."] > 0
    assert set(together) == set(apart)
    # ACCounter's two-binary-operands rule is measured on each plan's discovery
    # forward and applied to its later ones (docs/monitor.md, Limits): census_ac's
    # value-dependent part differs by a few dozen ACs in millions
    census = "totals.census_ac."
    assert rel(together[census], apart[census]) < 1e-4
    wrong = {k: (v, apart[k]) for k, v in together.items()
             if k != census and rel(v, apart[k]) > 1e-9}
    assert not wrong, wrong


@pytest.mark.parametrize("largest", [1 << 16, 0], ids=["kept", "in-taps"])
@pytest.mark.parametrize("build,traced", [(M.two_maxpools, False), (M.rare_paths, False),
                                          (M.readout, True), (M.shared_lif, False)])
def test_counts_under_another_dispatch_mode_are_the_same(build, traced, largest, monkeypatch):
    """With a profiler's dispatch mode on (torch's FlopCounterMode), our hooks hide
    their ops from it and take the general path: the same counts as without
    (``traced``: the traced forward under it too, its output read there), the
    outputs kept for the end of the forward or counted in their taps."""
    import contextlib
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    from opentelemetry_instrumentation_spikeformer.monitor import tally

    monkeypatch.setattr(tally, "DEFER_MAX_ELEMENTS", largest)
    torch.manual_seed(3)
    base = build()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(3)]
    snaps = []
    for under in (False, True):
        model = copy.deepcopy(base)
        monitor = monitor_model(model, "m")
        if not traced:
            forwards(model, xs[:1])
        with FlopCounterMode(display=False) if under else contextlib.nullcontext():
            forwards(model, xs[1:] if not traced else xs)
        snaps.append(monitor.read(detail=True))
        monitor.detach()
    assert snaps[0]["forwards"] == snaps[1]["forwards"] == 3
    assert snaps[0]["totals"]["synops"] > 0
    for key in ("consumers", "layers", "totals"):
        assert snaps[0][key] == snaps[1][key], key


def test_input_shapes_past_the_plan_limit_are_not_counted(caplog):
    """Eight input signatures get a plan; forwards of a ninth and tenth are not
    counted, with one warning."""
    from opentelemetry_instrumentation_spikeformer.monitor import synops

    torch.manual_seed(3)
    model = M.repeated_steps()
    monitor = monitor_model(model, "m")
    sizes = list(range(1, synops.MAX_PLANS + 3))
    xs = [torch.rand(M.T, b, 2, 8, 8) * 3 for b in sizes]
    forwards(model, xs + xs[-1:])
    snap = monitor.read()
    assert len(monitor.topology.tallies) == synops.MAX_PLANS == 8
    monitor.detach()
    refs = references(model, xs[:synops.MAX_PLANS])
    assert snap["forwards"] == synops.MAX_PLANS
    assert rel(snap["totals"]["synops"], sum(sum(v for *_, v in r.by_consumer) for r in refs)) < REL
    warned = [r.getMessage() for r in caplog.records if "input shapes" in r.getMessage()]
    assert warned == ["spike monitor: more than 8 input shapes (or failed discovery); "
                      "forwards of new shapes are not counted"]


def test_a_forward_that_raises_leaves_the_monitor_counting(caplog):
    """The model's forward hook is called even when the forward raises: the next
    forwards are counted, exactly (what ran of the failed one is counted too)."""
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(4)]
    monitor = monitor_model(model, "m")
    forwards(model, xs[:2])
    boom = model.c1.register_forward_pre_hook(lambda *_: 1 / 0)  # after l0 ran
    with pytest.raises(ZeroDivisionError):
        forwards(model, xs[2:3])
    boom.remove()
    M.reset(model)
    monitor.reset()
    forwards(model, xs[3:])
    snap = monitor.read(detail=True)
    monitor.detach()
    check(snap, references(model, xs[3:]))
    assert snap["forwards"] == 1 and snap["totals"]["synops"] > 0


def test_ops_the_tracer_fails_on_are_warned_once(monkeypatch, caplog):
    """An op whose tracing fails is left out of the plan, never out of the
    forward: one warning per model, naming how many ops, the model and the first."""
    from opentelemetry_instrumentation_spikeformer.monitor import dataflow

    on_op = dataflow.Graph.on_op

    failures = []

    def failing(self, func, *args):
        if "convolution" in str(func):
            failures.append(1)
            raise RuntimeError(f"boom {len(failures)} " + "!" * 300)
        return on_op(self, func, *args)

    monkeypatch.setattr(dataflow.Graph, "on_op", failing)
    torch.manual_seed(3)
    model = M.repeated_steps()
    xs = [M.small_input((2, 8, 8), 0, scale=3.0), torch.rand(M.T, 1, 2, 8, 8) * 3]
    expected = []
    with torch.no_grad():
        for x in xs:
            expected.append(model(x))
            M.reset(model)
    monitor = monitor_model(model, "m")
    with torch.no_grad():  # two batch sizes: two discoveries
        for x, want in zip(xs, expected):
            assert torch.equal(model(x), want)
            M.reset(model)
    snap = monitor.read()
    monitor.detach()
    warned = [r.getMessage() for r in caplog.records if "could not be traced" in r.getMessage()]
    first = ("aten.convolution.default: RuntimeError: boom 1 " + "!" * 300)[:200]
    assert warned == ["spike monitor: 2 op(s) of Repeated could not be traced; its synops may "
                      f"miss them (first: {first})"]
    assert snap["forwards"] == 2 and snap["totals"]["spikes"] > 0


class _Ops(TorchDispatchMode):
    """Every aten op it sees, by name."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("largest", [1 << 16, 0], ids=["kept", "in-taps"])
@pytest.mark.parametrize("build", [M.two_maxpools, M.shared_lif])
def test_a_profiler_sees_the_same_model_ops_with_a_monitor_attached(build, largest,
                                                                    monkeypatch):
    """Our ops stay hidden from another dispatch mode, and only ours: torch's
    FlopCounterMode counts the same FLOPs of the model with and without a monitor,
    and a mode that counts every aten op the same ops, forward after forward
    (the guard that hides ours is released each time), whether the outputs are
    kept for the end of the forward or counted in their taps."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    from opentelemetry_instrumentation_spikeformer.monitor import tally

    monkeypatch.setattr(tally, "DEFER_MAX_ELEMENTS", largest)
    torch.manual_seed(3)
    base = build()
    xs = [M.small_input((2, 8, 8), s, scale=3.0) for s in range(3)]
    flops, ops = [], []
    for monitored in (False, True):
        model = copy.deepcopy(base)
        monitor = monitor_model(model, "m") if monitored else None
        forwards(model, xs[:1])  # the discovery pass outside the counter
        counter, every = FlopCounterMode(display=False), _Ops()
        with counter, every:
            forwards(model, xs[1:])
        flops.append(counter.get_total_flops())
        ops.append(every.ops)
        if monitor is not None:
            assert monitor.read()["forwards"] == 3
            monitor.detach()
    assert flops[0] == flops[1] > 0
    assert ops[0] == ops[1] and sum(ops[0].values()) > 0


def _single_step(build, seed=3):
    """``measure`` on a single-step model: [B, 2, 8, 8] inputs."""
    torch.manual_seed(seed)
    model = build()
    xs = [torch.rand(M.B, 2, 8, 8, generator=torch.Generator().manual_seed(s)) * 3
          for s in range(3)]
    return model, measure(model, xs[0], xs[1:])


def test_per_neuron_counts_with_nothing_to_sum_are_copied():
    """Every dim of l0's spikes matters to some consumer (the padded conv: rows
    and columns; the head: batch and channel): its per-neuron counts are the
    spike tensor itself, copied into the forward's buffer."""
    model, (snap, refs) = _single_step(M.copy_segment)
    check(snap, refs)
    convs = linear_synops(snap)
    assert convs["c1"] > 0 and convs["fc"] > 0
    row = {r["layer"]: r for r in snap["layers"]}["l0"]
    assert row["synops"] == convs["c1"] + convs["fc"]


def test_a_plan_can_hold_per_neuron_counts_with_nothing_to_sum():
    torch.manual_seed(3)
    model = M.copy_segment()
    monitor = monitor_model(model, "m")
    forwards(model, [torch.rand(M.B, 2, 8, 8) * 3])
    (tally,) = monitor.topology.tallies.values()
    monitor.detach()
    leaf = next(leaf for leaf in tally.plan.leaves if leaf.name == "l0")
    assert leaf.per_neuron and leaf.summed == ()
    assert tally.segments[("events", leaf.node)].copy


@pytest.mark.parametrize("limit,wide", [(16.0, "n0"), (1024.0, "n1")])
def test_multi_level_spike_counts_are_sized_for_their_largest_count(limit, wide, monkeypatch):
    """A count source's segment is bounded by its elements (or per-neuron rows)
    times 16, the largest count a count segment is sized for: n0's counts are per
    neuron over 8 rows (batch x channels summed: 8 x 16 = 128), n1's one count of
    512 elements (8,192); each goes to float64 exactly when its bound reaches the
    float32 limit, and the counts stay exact either way."""
    from opentelemetry_instrumentation_spikeformer.monitor import tally as tally_module

    monkeypatch.setattr(tally_module, "F32_EXACT", limit)
    model, (snap, refs) = _single_step(M.count_sources)
    check(snap, refs)
    rows = {r["layer"]: r for r in snap["layers"]}
    assert rows["n0"]["output"] == "count" and rows["n1"]["spikes"] > 0
    # multi-level spikes drive no binary accumulate: c1 and c2 are priced at their
    # dense MACs, like the encoding conv c0 (single-step: every forward a new
    # input), per forward B x 4 x 64 x (2 x 9 + 4 x 9 + 4)
    counts = snap["counts"]
    assert counts["binary_weight_synops"] == 0
    assert counts["nonbinary_weight_macs"] == 2 * M.B * 4 * 64 * (2 * 9 + 4 * 9 + 4)
    assert counts["encoding_macs"] == counts["encoding_macs_every_step"] == \
        2 * M.B * 4 * 64 * 2 * 9
    monitor = monitor_model(model, "m")
    forwards(model, [torch.rand(M.B, 2, 8, 8) * 3])
    (tally,) = monitor.topology.tallies.values()
    monitor.detach()
    leaves = {leaf.name: leaf for leaf in tally.plan.leaves}
    assert leaves["n0"].per_neuron and leaves["n0"].summed == (0, 1)
    assert not leaves["n1"].per_neuron and math.prod(leaves["n1"].shape) == 512
    assert {name: tally.segments[("events", leaf.node)].wide for name, leaf in leaves.items()} \
        == {"n0": wide == "n0", "n1": True}
