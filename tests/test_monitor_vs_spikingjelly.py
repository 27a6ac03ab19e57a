"""The monitor against spikingjelly 2.0.0's own op counter on its three spiking
transformers: ``SynOpCounter`` (synops of spike-driven weight ops),
``SimpleEnergyProfiler`` (compute energy: MACs and ACs) and
``LemaireEnergyProfiler`` (memory-aware analytical model).

SynOpCounter decides "spike" by the values of each operand in each forward; the
monitor follows the dataflow. Our ``spikes`` SOPs are exactly SynOpCounter's
plus the attention adds it has no rule for (SDSA's ``(k*v).sum``, QKA's
``q.sum``: reductions of spikes into a neuron); our ``spike_sums`` SOPs (convs
fed by residual sums of spikes, heads on a mean) are MACs to it; a graded
tensor that happens to hold only 0/1 in one forward would be spikes to it (the
test computes that term; it is zero here)."""

from __future__ import annotations

import warnings

import pytest

import torch
import spikingjelly.activation_based.op_counter as oc

import dataflow_models as M  # noqa: E402

from opentelemetry_instrumentation_spikeformer.monitor import energy, monitor_model  # noqa: E402


LEMAIRE_COUNTS = ("ac", "mac", "synop", "acc_addr", "mac_addr")


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


class Recording(oc.SynOpCounter):
    """SynOpCounter that also keeps (value, operands binary?) per weight op, in order."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, bool, bool]] = []

    def count(self, func, args, kwargs, out, active_modules=None, parent_names=None):
        value = super().count(func, args, kwargs, out, active_modules=active_modules,
                              parent_names=parent_names)
        if func in (torch.ops.aten.addmm.default, torch.ops.aten.baddbmm.default):
            a, b = args[1], args[2]
        else:
            a, b = args[0], args[1]
        self.calls.append((int(value), oc.is_binary_tensor(a), oc.is_binary_tensor(b)))
        return value


@pytest.fixture(scope="module", params=list(M.TRANSFORMERS))
def counted(request):
    """One model, one input: the monitor's snapshot of that forward (the
    discovery pass itself, counted) and the model for the references."""
    model = M.TRANSFORMERS[request.param]()
    x = M.image(1)
    monitor = monitor_model(model, request.param)
    with torch.no_grad():
        model(x)
    M.reset(model)
    snap = monitor.read(detail=True)
    monitor.detach()
    return request.param, model, x, snap


def test_spikes_equal_synopcounter_plus_attention_adds(counted):
    name, model, x, snap = counted
    rec = Recording()
    with torch.no_grad(), oc.DispatchCounterMode([rec]):
        model(x)
    M.reset(model)
    weight_ops = sorted((c for c in snap["consumers"] if c["seq"] >= 0), key=lambda c: c["seq"])
    chance = 0.0  # (c): graded by dataflow, binary by value in this forward
    for c in weight_ops:
        theirs, a_bin, b_bin = rec.calls[c["seq"]]
        if c["category"] == "spikes" and c["values"] == "binary":
            assert theirs == c["synops"], (name, c)
        elif theirs:
            assert a_bin or b_bin, (name, c, theirs)
            chance += theirs - (c["synops"] if c["category"] == "spikes" else 0.0)
    adds = snap["counts"]["adds_by_input"]["spikes"]
    spikes = snap["totals"]["synops_by_input"]["spikes"]
    assert rec.get_total() == spikes - adds + chance
    assert chance == 0.0 and rec.get_total() > 0
    assert snap["counts"]["binary_weight_synops"] == rec.get_total()
    if name in ("sdt", "qkformer"):  # SDSA / QKA: elementwise attention adds it skips
        assert adds > 0
    else:
        assert adds == 0


@pytest.mark.parametrize("cost", ["fp32", "int8"])
def test_compute_energy_equals_simple_energy_profiler(counted, cost):
    """MAC and AC counts equal spikingjelly's MACCounter / ACCounter on the same
    forward, so the compute energy equals the profiler's with the same per-op
    costs. The profiler's own AC is higher by the ``aten.sum`` ops its memory
    counter runs in module hooks inside its dispatch mode: measured exactly here."""
    name, model, x, snap = counted
    config = getattr(oc.SimpleEnergyCostConfig, cost)()
    profiler = oc.SimpleEnergyProfiler(config=oc.SimpleEnergyConfig(cost_config=config))
    profiler.bind_model(model)
    with profiler, torch.no_grad():
        model(x)
    M.reset(model)
    report = profiler.get_report()
    mac, ac = oc.MACCounter(), oc.ACCounter()
    with torch.no_grad(), oc.DispatchCounterMode([mac, ac]):
        model(x)
    M.reset(model)
    ours = energy.compute_only(snap, config.e_mac_pj, config.e_ac_pj)
    assert ours["mac"] == report.counts["mac"] == mac.get_total()
    assert ours["synop"] == report.counts["synop"]
    assert ours["ac"] == ac.get_total()

    def sums(counter):
        return counter.get_counts()["Global"].get(torch.ops.aten.sum.default, 0)

    artefact = sums(profiler.ac_counter) - sums(ac)
    assert artefact > 0 and report.counts["ac"] - ours["ac"] == artefact
    expected = report.energy_compute_pj - artefact * config.e_ac_pj
    assert rel(ours["energy_compute_pj"], expected) < 1e-12
    assert rel(ours["energy_compute_pj"], report.energy_compute_pj) < 0.01  # the artefact


def test_memory_aware_estimate_equals_lemaire_profiler(counted):
    name, model, x, snap = counted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = oc.estimate_lemaire_energy(model, x,
                                            config=oc.LemaireEnergyConfig(strict=False))
    M.reset(model)
    memory = snap["energy_memory"]
    for key in LEMAIRE_COUNTS:
        assert rel(memory["counts"][key], report.counts[key]) < 1e-9, (key, name)
    for key in ("ops", "addressing", "memory", "inout", "params", "potential"):
        assert rel(memory["breakdown_mj"][key] * 1e9 * snap["inferences"],
                   report.breakdown_pj[f"{key}_pj"]) < 1e-9, (key, name)
    assert rel(memory["total_pj"], report.total_pj) < 1e-9
    # per inference, and memory dominates the compute-only estimate by far
    assert memory["snn_mj"] == pytest.approx(report.total_pj * 1e-9 / snap["inferences"])
    assert memory["snn_mj"] > 10 * snap["energy"]["snn_mj"]


def test_a_profiler_sees_none_of_the_monitors_work():
    """Our hooks and our discovery pass hide their own ops from other dispatch
    modes: SynOpCounter / ACCounter count the same with or without a monitor."""
    model = M.qkformer()
    x = M.image(1)

    def profile():
        syn, ac = oc.SynOpCounter(), oc.ACCounter()
        with torch.no_grad(), oc.DispatchCounterMode([syn, ac]):
            model(x)
        M.reset(model)
        return syn.get_total(), ac.get_total()

    bare = profile()
    monitor = monitor_model(model, "q")
    assert profile() == bare  # the traced discovery pass
    assert profile() == bare  # a counted forward
    assert monitor.read()["forwards"] == 2
    monitor.detach()


def monitored(model, runs):
    """The monitor's detailed snapshot over ``runs`` (the model reset after each)."""
    monitor = monitor_model(model, "cnn")
    with torch.no_grad():
        for x in runs:
            model(x)
            M.reset(model)
    snap = monitor.read(detail=True)
    monitor.detach()
    return snap


@pytest.mark.parametrize("build", ["spike_input_cnn", "multi_step_layer_cnn", "single_step_cnn"])
def test_memory_aware_estimate_of_a_spike_driven_if_cnn_equals_lemaire_profiler(build):
    """Spikes into the first conv and into a linear head, IF (not leaky)
    neurons; single-step LIFs (one forward, one step). Two forwards of the same
    input: twice the profiler's one pass."""
    torch.manual_seed(0)
    model = getattr(M, build)()
    x = M.small_input((2, 8, 8), 1, scale=3.0)
    if build == "single_step_cnn":
        x = x[0]
    snap = monitored(model, [x, x])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = oc.estimate_lemaire_energy(model, x, config=oc.LemaireEnergyConfig(strict=False))
    M.reset(model)
    memory = snap["energy_memory"]
    assert snap["forwards"] == 2 and report.counts["ac"] > 0
    for key in LEMAIRE_COUNTS:
        assert rel(memory["counts"][key], 2 * report.counts[key]) < 1e-9, key
    assert rel(memory["total_pj"], 2 * report.total_pj) < 1e-9


def test_estimates_over_two_input_shapes_and_repeated_forwards_add_up():
    """Two batch sizes (two plans), the first input twice, on a residual CNN
    (dense stem, spike-driven convs, a SEW sum and a pooled head: MACs and ACs):
    the memory-aware estimate is the profiler's passes added, the compute-only
    counts the MACCounter's and ACCounter's."""
    torch.manual_seed(1)
    model = M.settle(M.residual_cnn(), M.small_input((2, 8, 8), 0))
    x0 = M.small_input((2, 8, 8), 1)
    x1 = M.small_input((2, 8, 8), 2)[:, :1]
    runs = [x0, x0, x1]
    snap = monitored(model, runs)
    reports, mac, ac = [], oc.MACCounter(), oc.ACCounter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in runs:
            reports.append(oc.estimate_lemaire_energy(
                model, x, config=oc.LemaireEnergyConfig(strict=False)))
            M.reset(model)
            with torch.no_grad(), oc.DispatchCounterMode([mac, ac]):
                model(x)
            M.reset(model)
    memory = snap["energy_memory"]
    for key in LEMAIRE_COUNTS:
        assert rel(memory["counts"][key], sum(r.counts[key] for r in reports)) < 1e-9, key
    assert rel(memory["total_pj"], sum(r.total_pj for r in reports)) < 1e-9
    ours = energy.compute_only(snap, 4.6, 0.9)
    assert snap["forwards"] == 3 and ours["mac"] == mac.get_total() > 0
    assert ours["ac"] == ac.get_total() > 0
