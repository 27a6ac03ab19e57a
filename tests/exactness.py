"""The monitor's numbers against tests/bruteforce.py: the helpers the exactness
tests share (a measured snapshot, the brute force on the same inputs, and the
comparison consumer by consumer, layer by layer, category by category)."""

from __future__ import annotations

from collections import defaultdict

import torch

import dataflow_models as M
from bruteforce import brute_force

from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

REL = 1e-6


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def is_neuron(module) -> bool:
    from spikingjelly.activation_based import neuron

    return isinstance(module, neuron.BaseNode)


def measure(model, discover, inputs, grad=False):
    """Our snapshot over ``inputs`` (after a discovery forward on ``discover``)
    and the brute force on the same inputs (ours with autograd on if ``grad``)."""
    monitor = monitor_model(model, "m")
    with torch.enable_grad() if grad else torch.no_grad():
        model(discover)
        M.reset(model)
        monitor.reset()
        for x in inputs:
            model(x)
            M.reset(model)
    snap = monitor.read(detail=True)
    monitor.detach()
    return snap, references(model, inputs)


def references(model, inputs, neuron=is_neuron, **kwargs):
    """The brute force on each input, the model reset after each."""
    refs = []
    for x in inputs:
        refs.append(brute_force(model, neuron, x, **kwargs))
        M.reset(model)
    return refs


def small_measured(build):
    """``measure`` on one of the small excitatory models: 2 x 8 x 8 inputs."""
    torch.manual_seed(3)
    model = build()
    return model, measure(model, M.small_input((2, 8, 8), 0, scale=3.0),
                          [M.small_input((2, 8, 8), s, scale=3.0) for s in (1, 2)])


def linear_synops(snap) -> dict:
    """SOPs of each weight consumer, by its top-level module name."""
    return {c["scope"].split(".")[0]: c["synops"] for c in snap["consumers"]
            if c["kind"] == "linear"}


def no_monitor_errors(caplog) -> bool:
    return not [r for r in caplog.records if "spike monitor" in r.getMessage()]


def check(snap, refs):
    """Consumer by consumer, reductions and accumulates by scope, layer by
    layer and category by category; returns the brute-force totals."""
    ours = [(c["scope"], c["kind"], c["category"], c["synops"]) for c in snap["consumers"]
            if c["kind"] in ("linear", "product")]
    theirs = defaultdict(float)
    order = []
    for ref in refs:
        for i, (scope, kind, cat, value) in enumerate(ref.by_consumer):
            theirs[i] += value
            if len(order) <= i:
                order.append((scope, kind, cat))
    assert [o[:3] for o in ours] == order
    for i, (scope, kind, cat, value) in enumerate(ours):
        assert rel(value, theirs[i]) < REL, (scope, kind, cat, value, theirs[i])
    weight_ops = [c for c in snap["consumers"] if c["kind"] in ("linear", "product")]
    for i, c in enumerate(weight_ops):  # what the memory-aware estimate reads per consumer
        entering = sum(ref.entering[i] for ref in refs)
        dense = sum(ref.dense[i] for ref in refs)
        assert rel(c["events_in"], entering) < REL, (c["scope"], c["events_in"], entering)
        assert c["dense_macs"] == dense > 0, (c["scope"], c["dense_macs"], dense)
    assert any(c["events_in"] > 0 for c in weight_ops) or not weight_ops
    for kind, attr in (("reduce", "reduce_adds"), ("accumulate", "accumulates")):
        mine = defaultdict(float)
        for c in snap["consumers"]:
            if c["kind"] == kind:
                mine[(c["scope"], c["category"])] += c["synops"]
        ref_sum = defaultdict(float)
        for ref in refs:
            found = getattr(ref, attr)
            for key, value in (found() if callable(found) else found).items():
                ref_sum[key] += value
        assert {k for k, v in mine.items() if v} == {k for k, v in ref_sum.items() if v}, kind
        for key, value in ref_sum.items():
            assert rel(mine[key], value) < REL, (kind, key, mine[key], value)
    ref_layers = defaultdict(float)
    for ref in refs:
        for key, value in ref.per_source().items():
            ref_layers[key] += value
    for row in snap["layers"]:
        for cat, value in row["synops_by_input"].items():
            assert rel(value, ref_layers.get((row["layer"], cat), 0.0)) < REL, (row["layer"], cat)
    totals = defaultdict(float)
    for ref in refs:
        for cat, value in ref.totals().items():
            totals[cat] += value
    for cat, value in snap["totals"]["synops_by_input"].items():
        assert rel(value, totals.get(cat, 0.0)) < REL, cat
    _check_counts(snap, refs)
    return totals


def _check_counts(snap, refs):
    """The energy models' inputs, summed from the consumers checked above: adds
    (the brute force's reductions and accumulates), accumulates driven by binary
    spikes (what ``SynOpCounter`` counts), the dense MACs of every other weight op."""
    adds = defaultdict(float)
    for ref in refs:
        for (_scope, cat), value in list(ref.reduce_adds().items()) + \
                list(ref.accumulates.items()):
            adds[cat] += value
    for cat, value in snap["counts"]["adds_by_input"].items():
        assert rel(value, adds.get(cat, 0.0)) < REL, ("adds", cat, value, adds.get(cat))
    weight_ops = [c for c in snap["consumers"] if c["kind"] in ("linear", "product")]
    binary = [c for c in weight_ops if c["category"] == "spikes" and c["values"] == "binary"]
    assert rel(snap["counts"]["binary_weight_synops"], sum(c["synops"] for c in binary)) < REL
    dense = sum(c["dense_macs"] for c in weight_ops if c not in binary)
    macs = snap["counts"]["encoding_macs_every_step"] + snap["counts"]["graded_macs"]
    assert rel(snap["counts"]["nonbinary_weight_macs"], dense + macs) < REL


def forwards(model, inputs, **kwargs):
    with torch.no_grad():
        for x in inputs:
            model(x, **kwargs)
            M.reset(model)


def returned_events(model, inputs) -> list[dict[str, float]]:
    """Non-zeros of each neuron's outputs as its module returned them, by module
    name, per forward (the model reset after each)."""
    counts: list[dict[str, float]] = []

    def count(name, out):
        counts[-1][name] = counts[-1].get(name, 0.0) + float((out != 0).sum())

    handles = [m.register_forward_hook(lambda _m, _a, out, name=name: count(name, out))
               for name, m in model.named_modules() if is_neuron(m)]
    with torch.no_grad():
        for x in inputs:
            counts.append({})
            model(x)
            M.reset(model)
    for handle in handles:
        handle.remove()
    return counts
