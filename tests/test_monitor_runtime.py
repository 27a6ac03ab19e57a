"""The counting machinery on real models: nothing on the forward path waits for
the device (discovery pass included), the traced forward changes no output,
long runs stay exact, a new input shape gets its own plan, methods the model
calls directly are tapped at class level and detached cleanly."""

from __future__ import annotations

import copy
import gc
import pickle
import weakref

import pytest

import torch
import spikingjelly  # noqa: F401
from spikingjelly.activation_based import functional, neuron

import dataflow_models as M  # noqa: E402
from bruteforce import brute_force  # noqa: E402
from sync_guard import sync_guard  # noqa: E402,F401 (fixture)

from opentelemetry_instrumentation_spikeformer.monitor import hooks, monitor_model  # noqa: E402


def is_neuron(module) -> bool:
    from spikingjelly.activation_based import neuron

    return isinstance(module, neuron.BaseNode)


@pytest.mark.parametrize("name", list(M.TRANSFORMERS))
def test_forward_path_never_syncs_discovery_included(name, sync_guard):
    model = M.TRANSFORMERS[name]()
    monitor = monitor_model(model, name, sample_every=1)
    with torch.no_grad():
        for seed in (1, 2, 3):  # the first forward is the traced discovery pass
            model(M.image(seed))
            M.reset(model)
    assert sync_guard == []
    assert monitor.read()["totals"]["synops"] > 0  # the transfer happens here
    assert any(c.startswith(("cpu", "tolist")) for c in sync_guard)
    monitor.detach()


def test_discovery_changes_no_output_and_is_counted():
    model = M.sdt()
    x = M.image(1)
    with torch.no_grad():
        bare = model(x)
    M.reset(model)
    reference = brute_force(model, is_neuron, x).totals()
    M.reset(model)
    monitor = monitor_model(model, "sdt")
    with torch.no_grad():
        traced = model(x)  # discovery
        M.reset(model)
        counted = model(x)
        M.reset(model)
    assert torch.equal(bare, traced) and torch.equal(bare, counted)
    snap = monitor.read()
    assert snap["forwards"] == 2
    for cat, value in reference.items():
        assert snap["totals"]["synops_by_input"][cat] == 2 * value
    monitor.detach()


def test_long_runs_stay_exact():
    """Float32 per-forward counts added into float64 totals, forward after forward."""
    model = M.settle(M.residual_cnn(), M.small_input((2, 8, 8), 0))
    x = M.small_input((2, 8, 8), 1)
    reference = brute_force(model, is_neuron, x)
    M.reset(model)
    monitor = monitor_model(model, "cnn")
    runs = 60
    with torch.no_grad():
        for _ in range(runs):
            model(x)
            M.reset(model)
    snap = monitor.read()
    for cat, value in reference.totals().items():
        assert snap["totals"]["synops_by_input"][cat] == runs * value
    rows = {r["layer"]: r for r in snap["layers"]}
    for (layer, cat), value in reference.per_source().items():
        assert rows[layer]["synops_by_input"][cat] == runs * value
    monitor.detach()


def test_a_new_input_shape_gets_its_own_plan():
    model = M.spikformer()
    inputs = [M.image(1, batch=2), M.image(2, batch=3), M.image(3, batch=3), M.image(4, batch=2)]
    expected: dict[str, float] = {}
    for x in inputs:  # before attaching: the reference must not trace our hooks
        for cat, value in brute_force(model, is_neuron, x).totals().items():
            expected[cat] = expected.get(cat, 0.0) + value
        M.reset(model)
    monitor = monitor_model(model, "spikformer")
    with torch.no_grad():
        for x in inputs:
            model(x)
            M.reset(model)
    snap = monitor.read()
    assert len(monitor.topology.tallies) == 2
    assert snap["forwards"] == 4 and snap["inferences"] == 2 + 3 + 3 + 2
    for cat, value in expected.items():
        assert snap["totals"]["synops_by_input"][cat] == value
    monitor.detach()


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + hooks.taps_on(m)
               for m in model.modules())


class Encoded(torch.nn.Module):
    """Calls its encoder by method, as spikingjelly's Qwen2SNNModel does."""

    def __init__(self):
        from spikingjelly.activation_based.ann2snn.qcfs import SignedQCFSSequenceEncoder

        super().__init__()
        self.encoder = SignedQCFSSequenceEncoder(scale=torch.full((6,), 0.25), time_steps=4)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.encoder.encode(x))


def test_detach_removes_every_hook_and_tap():
    from spikingjelly.activation_based.ann2snn.qcfs import SignedQCFSSequenceEncoder

    model = Encoded()
    before = _hooks(model)
    monitor = monitor_model(model, "enc")
    x = torch.randn(2, 6)
    with torch.no_grad():
        model(x)
        model(x)
    snap = monitor.read()
    row = {r["layer"]: r for r in snap["layers"]}["encoder"]
    assert row["role"] == "encoder" and row["output"] == "scaled"
    with torch.no_grad():
        encoded = model.encoder.encode(x)
    assert row["spikes"] == 2 * float((encoded != 0).sum()) > 0
    assert row["magnitude"] == pytest.approx(2 * float(encoded.abs().sum()))
    assert row["synops_by_input"]["graded"] == row["spikes"] * 3  # one Linear, 3 outputs
    assert hooks._tap_of(SignedQCFSSequenceEncoder.__dict__["encode"])  # a class-level tap
    copy.deepcopy(model)
    pickle.loads(pickle.dumps(model))
    monitor.detach()
    assert _hooks(model) == before
    assert all("forward" not in m.__dict__ and "encode" not in m.__dict__
               for m in model.modules())
    assert hooks._tap_of(SignedQCFSSequenceEncoder.__dict__["encode"]) is None


class _Flaky(neuron.IFNode):
    """An IF neuron whose forward raises while ``fail`` is set."""

    fail = False

    def forward(self, x):
        if self.fail:
            raise ValueError("not today")
        return super().forward(x)


def test_an_unmonitored_copy_is_not_counted_and_a_raising_layer_keeps_the_plan():
    """A copy of a monitored model shares its classes but is not counted; a layer
    that raises leaves the plan standing; detach removes every hook."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), _Flaky(v_threshold=0.5, step_mode="m"),
        torch.nn.Linear(8, 3), neuron.IFNode(v_threshold=0.5, step_mode="m"))
    x = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(1)) * 2
    layers = [model[1], model[3]]
    events = [0.0, 0.0]
    ref = copy.deepcopy(model)
    for k, m in enumerate((ref[1], ref[3])):
        m.register_forward_hook(lambda _m, _a, out, k=k: events.__setitem__(
            k, float((out != 0).sum())))
    with torch.no_grad():
        expected = ref(x)
    before = _hooks(model)
    monitor = monitor_model(model, "copied")
    other = copy.deepcopy(model)
    assert _hooks(model) > before and _hooks(other) == before
    with torch.no_grad():
        for _ in range(2):
            assert torch.equal(model(x), expected)
            functional.reset_net(model)
            other(x)
            functional.reset_net(other)
        model[1].fail = True
        with pytest.raises(ValueError, match="not today"):
            model(x)
        model[1].fail = False
        functional.reset_net(model)
    assert len(monitor.topology.tallies) == 1 and not monitor.topology._retired
    assert not next(iter(monitor.topology.tallies.values())).stale
    assert monitor.forwards == 2 and monitor.inferences == 2 * x.shape[1]  # (not the raised one)
    rows = {r["layer"]: r["spikes"] for r in monitor.read()["layers"]}
    assert min(events) > 0 and rows == {"1": 2 * events[0], "3": 2 * events[1]}
    monitor.detach()
    assert _hooks(model) == before and all(hooks.taps_on(m) == 0 for m in layers)


def test_a_forward_that_raises_in_the_discovery_pass_leaves_no_plan():
    """A first forward that raises is part of a forward: no plan is built from
    it, nothing is counted, and the next forward is traced afresh."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), neuron.IFNode(v_threshold=0.5, step_mode="m"),
        torch.nn.Linear(8, 3), _Flaky(v_threshold=0.5, step_mode="m"))
    outs = []
    model[1].register_forward_hook(lambda _m, _a, out: outs.append(float(out.sum())))
    model[3].register_forward_hook(lambda _m, _a, out: outs.append(float(out.sum())))
    x = torch.rand(4, 5, 6) * 2
    monitor = monitor_model(model, "raising")
    model[3].fail = True  # (after the first layer spiked)
    with torch.no_grad(), pytest.raises(ValueError, match="not today"):
        model(x)
    assert not monitor.topology.tallies and monitor.forwards == 0
    model[3].fail = False
    outs.clear()
    with torch.no_grad():
        for _ in range(2):
            functional.reset_net(model)
            model(x)
    assert monitor.forwards == 2 and monitor.read()["totals"]["spikes"] == sum(outs) > 0
    monitor.detach()


class _Spikes:
    """A user's forward hook (picklable) that records the non-zeros it sees."""

    def __init__(self):
        self.counts = []

    def __call__(self, _module, _args, out):
        self.counts.append(float((out != 0).sum()))


def _two_layers():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8), neuron.IFNode(v_threshold=0.5, step_mode="m"),
        torch.nn.Linear(8, 3), neuron.IFNode(v_threshold=0.5, step_mode="m"))


def test_layers_are_tapped_through_the_call_slot_and_copies_carry_no_tap():
    """A spiking layer is reached through its instance's ``_compiled_call_impl``
    slot, not a forward hook (torch's fast call path stays); the user's hooks
    still run; pickles, deep copies and DataParallel replicas carry no tap and
    are not counted; detach empties the slots."""
    model = _two_layers()
    x = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(1)) * 2
    seen = _Spikes()  # the user's own hook, an independent count of layer 3's spikes
    model[3].register_forward_hook(seen)
    monitor = monitor_model(model, "slots")
    layers = (model[1], model[3])
    assert [hooks.taps_on(m) for m in layers] == [1, 1]
    assert not model[1]._forward_hooks and len(model[3]._forward_hooks) == 1
    assert all(hooks._is_call_tap(m.__dict__.get("_compiled_call_impl")) for m in layers)
    with torch.no_grad():
        for _ in range(3):  # discovery, then two counted forwards
            model(x)
            functional.reset_net(model)
    replica = model[3]._replicate_for_data_parallel()  # what DataParallel runs
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), replica):
        assert all("_compiled_call_impl" not in m.__dict__ for m in clone.modules())
        with torch.no_grad():
            clone(x if clone is not replica else torch.rand(4, 5, 3))
        functional.reset_net(clone)
    functional.reset_net(model)  # (the replica shares its state dicts)
    rows = {r["layer"]: r["spikes"] for r in monitor.read()["layers"]}
    # the user's hook ran on every call: the model's three, the replica's (which
    # shares its hook dict; the copies have copies of the hook)
    assert len(seen.counts) == 3 + 1 and seen.counts[1] > 0
    assert rows["3"] == sum(seen.counts[:3])  # the discovery forward is counted too
    monitor.detach()
    assert all("_compiled_call_impl" not in m.__dict__ for m in model.modules())
    assert [hooks.taps_on(m) for m in layers] == [0, 0]


def test_a_filled_call_slot_gets_a_forward_hook_and_stays_the_users():
    """A layer whose slot is already filled (``module.compile()``) gets a forward
    hook instead; a slot the user fills while the monitor is on is theirs after
    detach."""
    model = _two_layers()
    theirs = model[1]._call_impl  # what module.compile() would put there, uncompiled
    model[1]._compiled_call_impl = theirs
    monitor = monitor_model(model, "filled")
    assert len(model[1]._forward_hooks) == 1 and model[1]._compiled_call_impl is theirs
    assert hooks._is_call_tap(model[3].__dict__.get("_compiled_call_impl"))
    x = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(2)) * 2
    with torch.no_grad():
        for _ in range(2):
            model(x)
            functional.reset_net(model)
        h = model[0](x)
        expected = float((model[1](h) != 0).sum())
        functional.reset_net(model)
    rows = {r["layer"]: r["spikes"] for r in monitor.read()["layers"]}
    assert rows["1"] == 2 * expected > 0  # counted through the hook (discovery too)
    later = model[3]._call_impl
    model[3]._compiled_call_impl = later
    monitor.detach()
    assert model[1]._compiled_call_impl is theirs and model[3]._compiled_call_impl is later
    assert not model[1]._forward_hooks


class _OwnDeepcopy(neuron.IFNode):
    """Copies itself by copying ``__dict__`` (spikingjelly's FlexSN does)."""

    def __deepcopy__(self, memo):
        result = self.__class__.__new__(self.__class__)
        memo[id(self)] = result
        for key, value in self.__dict__.items():
            result.__dict__[key] = copy.deepcopy(value, memo)
        return result


class _OwnReduce(neuron.IFNode):
    """Pickles itself through a ``__reduce__`` of its own."""

    def __reduce__(self):
        return _rebuild, (type(self), self.__getstate__())


class _OwnCopy(neuron.IFNode):
    """Shallow-copies itself by copying ``__dict__``."""

    def __copy__(self):
        result = self.__class__.__new__(self.__class__)
        result.__dict__.update(self.__dict__)
        return result


def _rebuild(cls, state):
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj


def test_classes_that_copy_or_pickle_themselves_get_forward_hooks():
    """A call tap would travel with a copy made from ``__dict__`` and run the
    original module: such classes, and torch's own modules (the captured max
    pools: a compiled block calls them as graph leaves, running hooks but not
    the slot), get forward hooks. Their copies run on their own, uncounted."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), _OwnDeepcopy(v_threshold=0.5, step_mode="m"),
        torch.nn.Linear(8, 3), _OwnReduce(v_threshold=0.5, step_mode="m"))
    x = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(1)) * 2
    monitor = monitor_model(model, "own")
    assert all(len(m._forward_hooks) == 1 and "_compiled_call_impl" not in m.__dict__
               for m in (model[1], model[3]))
    shallow = _OwnCopy(v_threshold=0.5, step_mode="m")
    with monitor_model(torch.nn.Sequential(torch.nn.Linear(6, 8), shallow), "shallow"):
        assert len(shallow._forward_hooks) == 1 and hooks.taps_on(shallow) == 0
        assert "_compiled_call_impl" not in copy.copy(shallow).__dict__
    with torch.no_grad():
        model(x)
        functional.reset_net(model)
    before = monitor.read()["totals"]["spikes"]
    clone, loaded = copy.deepcopy(model), pickle.loads(pickle.dumps(model))
    clone[1].v_threshold = 1e9  # the copy never spikes: it runs its own module
    with torch.no_grad():
        assert float(clone[1](torch.rand(4, 5, 8) * 3).sum()) == 0
        loaded(x)
    assert before > 0 and monitor.read()["totals"]["spikes"] == before
    del model
    gc.collect()
    with torch.no_grad():  # the copies outlive the original
        clone(x)
        loaded(x)
    pools = M.two_maxpools()
    with monitor_model(pools, "pools"):
        with torch.no_grad():
            pools(M.small_input((2, 8, 8), 0))
        captured = [m for m in pools.modules() if isinstance(m, torch.nn.MaxPool2d)]
        assert captured and all(len(m._forward_hooks) == 1 and not hooks.taps_on(m)
                                for m in captured)


def test_a_call_slot_refilled_after_attach_is_hooked_at_the_next_read(caplog):
    """``module.compile()`` on a layer after attach replaces its call tap: the
    forwards until the next collection miss it (one warning), later ones count
    it again, through a forward hook."""
    model = _two_layers()
    reference = copy.deepcopy(model)
    xs = [torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(i)) * 2 for i in range(4)]
    mine, theirs = monitor_model(model, "refilled"), monitor_model(reference, "reference")

    def step(x):
        out = []
        for m, mon in ((model, mine), (reference, theirs)):
            with torch.no_grad():
                m(x)
            functional.reset_net(m)
            out.append({r["layer"]: r["spikes"] for r in mon.read()["layers"]})
        return out

    step(xs[0])
    a, ref_a = step(xs[1])
    for layer in (model[1], model[3]):  # what module.compile() puts there, uncompiled
        layer._compiled_call_impl = layer._call_impl
    b, ref_b = step(xs[2])  # both layers missed; the read warns once and hooks them
    c, ref_c = step(xs[3])
    for name in ("1", "3"):
        assert b[name] == a[name] and ref_b[name] > ref_a[name]
        assert c[name] - b[name] == ref_c[name] - ref_b[name] > 0
    assert len(model[1]._forward_hooks) == len(model[3]._forward_hooks) == 1
    warned = [r.getMessage() for r in caplog.records if "call was replaced" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("spike monitor: IFNode's call was replaced")
    assert warned[0].endswith("it is counted through a forward hook from now on, forwards "
                              "before this collection missed it")
    mine.detach()
    theirs.detach()
    assert not model[3]._forward_hooks and model[3].__dict__["_compiled_call_impl"] is not None


def test_an_inference_mode_forward_keeps_nothing_for_later(monkeypatch):
    """Under ``torch.inference_mode()`` outputs have no version counter: each is
    counted in its tap, none kept, and none asked for its version (which would
    raise, at about 8 us a layer)."""
    model = M.qkformer()
    monitor = monitor_model(model, "q")
    with torch.no_grad():
        model(M.image(0))
        M.reset(model)
    asked = []
    real = torch._C.TensorBase._version

    def version(self):
        asked.append(self.shape)
        return real.__get__(self)

    monkeypatch.setattr(torch.Tensor, "_version", property(version), raising=False)
    with torch.inference_mode():
        model(M.image(1))
        M.reset(model)
    assert asked == []
    with torch.no_grad():
        model(M.image(2))
        M.reset(model)
    assert len(asked) > 10  # the same forward outside inference mode: kept and checked
    monkeypatch.undo()
    snap = monitor.read()
    assert snap["forwards"] == 3 and snap["totals"]["spikes"] > 0
    monitor.detach()


def test_a_model_dropped_without_detach_gives_its_classes_their_methods_back():
    """A method tap (an encoder the model calls as ``.encode()``) lives on the
    class: once no tapped instance is left, the class has its own method again,
    even if nobody called ``detach()``."""
    from spikingjelly.activation_based.ann2snn.qcfs import SignedQCFSSequenceEncoder

    class Dropped(SignedQCFSSequenceEncoder):
        pass

    class Kept(SignedQCFSSequenceEncoder):
        def encode(self, x):
            return super().encode(x)

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Dropped(scale=torch.full((6,), 0.25), time_steps=4)
            self.b = Kept(scale=torch.full((6,), 0.25), time_steps=4)
            self.fc = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.a.encode(x) + self.b.encode(x))

    model = Two()
    monitor = monitor_model(model, "dropped")
    assert [hooks.taps_on(m) for m in (model.a, model.b)] == [1, 1]
    assert "encode" in Dropped.__dict__ and hooks._tap_of(Kept.__dict__["encode"])
    with torch.no_grad():
        model(torch.randn(2, 6))
        model(torch.randn(2, 6))
    assert monitor.read()["totals"]["spikes"] > 0
    del model
    gc.collect()
    assert "encode" not in Dropped.__dict__
    assert hooks._tap_of(Kept.__dict__["encode"]) is None


def test_the_monitor_does_not_keep_the_model_alive():
    model = M.spikformer()
    monitor = monitor_model(model, "spikformer")
    with torch.no_grad():
        model(M.image(1))
        M.reset(model)
        model(M.image(1))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    monitor.read()  # counts of a collected model can still be read


def test_a_failing_discovery_is_reported_and_not_retried_forever(monkeypatch, caplog):
    from opentelemetry_instrumentation_spikeformer.monitor import plan, synops

    calls = []

    def broken(*_args):
        calls.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(plan, "build", broken)
    model = M.settle(M.overlap_maxpool(), M.small_input((2, 9, 9), 0))
    x = M.small_input((2, 9, 9), 1)
    with torch.no_grad():
        expected = model(x)
    M.reset(model)
    monitor = monitor_model(model, "m")
    with torch.no_grad():
        for _ in range(synops.MAX_FAILED + 3):
            assert torch.equal(model(x), expected)  # the user's forward is untouched
            M.reset(model)
    assert len(calls) == synops.MAX_FAILED
    assert any("spike monitor forward end" in r.getMessage() for r in caplog.records)
    assert monitor.read()["forwards"] == 0
    monitor.detach()


def test_a_forward_inside_a_torch_func_transform_is_not_counted(caplog):
    """Inside ``torch.func.vmap`` the tensors are functorch wrappers, which a
    reduction into our buffer cannot take: the forward runs as it would
    unmonitored, is not counted, and one line says so (no internal error).
    (``grad`` and ``jvp`` take the same path, untested here: spikingjelly's
    surrogate functions cannot run under them at all.)"""
    import logging

    def toy():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 16), neuron.IFNode(v_threshold=0.5),
                                   torch.nn.Linear(16, 4))

    x = torch.rand(4, 8) * 2

    def run(model):
        out = torch.func.vmap(model)(x.unsqueeze(1))
        functional.reset_net(model)
        return out

    plain, model = toy(), toy()
    monitor = monitor_model(model, "t")
    expected = [run(plain) for _ in range(2)]
    assert all(torch.equal(run(model), e) for e in expected)
    ours = [r for r in caplog.records if r.levelno >= logging.WARNING
            and r.name.startswith("opentelemetry_instrumentation_spikeformer")]
    assert len(ours) == 1 and "torch.func transform" in ours[0].getMessage(), ours
    assert monitor.forwards == 0
    assert monitor.sequencer.sequences == 0  # (the single-step lead layer saw no sequence)
    with torch.no_grad():
        model(x)  # a plain forward of the same model: counted
    assert monitor.forwards == 1 and monitor.read()["totals"]["spikes"] > 0
    monitor.detach()


@pytest.mark.parametrize("how", ["functional_call", "autocast"])
def test_functional_call_and_autocast_forwards_are_counted(how):
    """Parameters swapped in for one call, a bfloat16 autocast: the spikes
    counted equal the layer's outputs."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), neuron.IFNode(v_threshold=0.5),
                                torch.nn.Linear(16, 4), neuron.IFNode(v_threshold=0.5))
    outs = []
    for m in model:
        if isinstance(m, neuron.IFNode):
            m.register_forward_hook(lambda _m, _a, out: outs.append(out.float().sum()))
    monitor = monitor_model(model, "t")
    x = torch.rand(4, 8) * 2
    params = {k: v * 1.5 for k, v in model.named_parameters()}
    with torch.no_grad():
        for _ in range(3):
            if how == "functional_call":
                torch.func.functional_call(model, params, (x,))
            else:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    model(x)
            functional.reset_net(model)
    assert monitor.forwards == 3
    assert monitor.read()["totals"]["spikes"] == float(sum(outs)) > 0
    monitor.detach()
