"""Spike and synop counts of the runtime monitor against independent references:
sinabs' own SNNAnalyzer, and counts computed in the test from the real
spikingjelly / snntorch outputs."""

from __future__ import annotations

import warnings

import pytest

import torch
nn = torch.nn
F = torch.nn.functional

from opentelemetry_instrumentation_spikeformer.monitor import monitor_model  # noqa: E402
from opentelemetry_instrumentation_spikeformer.monitor.hooks import taps_on  # noqa: E402

B, T = 3, 5


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def small_ann():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10), nn.ReLU(),
    )


@pytest.fixture
def sinabs_snn():
    import sinabs
    return sinabs.from_model(small_ann(), input_shape=(2, 8, 8), batch_size=B,
                             num_timesteps=T).spiking_model


def sinabs_input(seed: int = 1):
    torch.manual_seed(seed)
    return torch.rand(B * T, 2, 8, 8) * 3


class OutputRecorder:
    """The test's own record of what each neuron module emitted."""

    def __init__(self, model, predicate):
        self.outputs: dict[str, list] = {}
        self.handles = []
        for name, module in model.named_modules():
            if predicate(module):
                self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(_module, _args, output):
            spikes = output[0] if isinstance(output, tuple) else output
            self.outputs.setdefault(name, []).append(spikes.detach().clone())
        return hook

    def total(self, name: str) -> float:
        return float(sum(o.sum().item() for o in self.outputs[name]))

    def remove(self):
        for handle in self.handles:
            handle.remove()


def by_layer(snapshot):
    return {row["layer"]: row for row in snapshot["layers"]}


# -- sinabs vs SNNAnalyzer ------------------------------------------------------
def test_sinabs_counts_equal_snnanalyzer(sinabs_snn):
    import sinabs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        analyzer = sinabs.SNNAnalyzer(sinabs_snn)
    monitor = monitor_model(sinabs_snn, "cnn")
    with torch.no_grad():
        sinabs_snn(sinabs_input())
    snap = monitor.read()
    stats = analyzer.get_layer_statistics()
    rows = by_layer(snap)
    assert set(rows) == set(stats["spiking"]) == {"1", "4", "7"}
    for name, ref in stats["spiking"].items():
        assert rel(rows[name]["spikes"], ref["output"].sum().item()) < 1e-6
        assert rel(rows[name]["firing_rate"], ref["firing_rate"].item()) < 1e-6
        assert rows[name]["neurons"] == ref["n_neurons"]
        assert rows[name]["timesteps"] == T
    # Synops: SNNAnalyzer charges a weight layer (per sample) for its input
    # spikes; the monitor charges the spiking layer that fired into it.
    feeds = {"1": "3", "4": "6"}
    assert snap["inferences"] == B
    for spiking, weight in feeds.items():
        ours = rows[spiking]["synops"] / snap["inferences"]
        assert ours > 0
        assert rel(ours, stats["parameter"][weight]["synops"].item()) < 1e-6
        assert rows[spiking]["fanout"] == "exact"
    assert rows["7"]["synops"] == 0.0 and rows["7"]["fanout"] == "none"
    monitor.detach()


@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=(3, 2), stride=(2, 1)),
                                  dict(kernel_size=3, stride=2, ceil_mode=True)],
                         ids=["2x2", "overlapping", "ceil"])
def test_sinabs_sum_pool_routes_every_event(pool):
    """sinabs' ``SumPool2d`` is opaque to the tracer (``lp_pool2d``): each event
    goes on to the conv through the window(s) it falls in. Against SNNAnalyzer and
    the count of (pooled event, weight) pairs made here with ``lp_pool2d`` itself."""
    import sinabs
    import sinabs.layers as sl

    torch.manual_seed(4)
    snn = nn.Sequential(sl.IAFSqueeze(batch_size=B), sl.SumPool2d(**pool),
                        nn.Conv2d(2, 3, 2), sl.IAFSqueeze(batch_size=B))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        analyzer = sinabs.SNNAnalyzer(snn)
    monitor = monitor_model(snn, "cnn")
    recorder = OutputRecorder(snn, lambda m: isinstance(m, sl.IAFSqueeze))
    with torch.no_grad():
        snn(sinabs_input())
    snap = monitor.read(detail=True)
    rows = by_layer(snap)
    (conv,) = [c for c in snap["consumers"] if c["kind"] == "linear"]
    assert (conv["category"], conv["values"], conv["synops"]) == \
        ("spike_sums", "count", rows["0"]["synops"])  # summed events, priced as accumulates
    spikes = recorder.outputs["0"][0]
    p = snn[1]
    kh, kw = (p.kernel_size,) * 2 if isinstance(p.kernel_size, int) else p.kernel_size
    stride = p.stride if p.stride is not None else (kh, kw)
    sh, sw = (stride,) * 2 if isinstance(stride, int) else stride
    pad = (0, 0, 0, 0)
    if p.ceil_mode:  # the partial windows at the edge, as full windows over zeros
        h, w = spikes.shape[-2:]
        oh, ow = -(-(h - kh) // sh) + 1, -(-(w - kw) // sw) + 1
        pad = (0, (ow - 1) * sw + kw - w, 0, (oh - 1) * sh + kh - h)
    pooled = F.lp_pool2d(F.pad(spikes, pad), 1.0, (kh, kw), (sh, sw))
    with torch.no_grad():
        pairs = F.conv2d(pooled, torch.ones_like(snn[2].weight)).sum().item()
    assert rows["0"]["synops"] == pairs > 0
    theirs = analyzer.get_layer_statistics()["parameter"]["2"]["synops"].item() * B
    if p.ceil_mode:  # sinabs scales a partial window up to a full one (lp_pool2d goes
        assert theirs > pairs  # through avg_pool2d): SNNAnalyzer reads those values
    else:
        assert rel(rows["0"]["synops"], theirs) < 1e-6
    recorder.remove()
    monitor.detach()


def test_sinabs_counts_accumulate_and_reset(sinabs_snn):
    monitor = monitor_model(sinabs_snn, "cnn")
    recorder = OutputRecorder(sinabs_snn, lambda m: type(m).__name__ == "IAFSqueeze")
    with torch.no_grad():
        for seed in (1, 2, 3):
            sinabs_snn(sinabs_input(seed))
    rows = by_layer(monitor.read())
    for name in ("1", "4", "7"):
        assert rows[name]["spikes"] == recorder.total(name)
        assert rows[name]["forwards"] == 3
    monitor.reset()
    assert all(r["spikes"] == 0 for r in monitor.read()["layers"])
    with torch.no_grad():
        sinabs_snn(sinabs_input(4))
    assert by_layer(monitor.read())["1"]["spikes"] == recorder.outputs["1"][-1].sum().item()
    recorder.remove()
    monitor.detach()


def test_ann_macs_match_flop_counter(sinabs_snn):
    """ANN MACs come from the SNN's own weight layers; torch's FlopCounterMode on
    the source ANN (2 FLOPs per MAC) is the independent reference."""
    from torch.utils.flop_counter import FlopCounterMode

    monitor = monitor_model(sinabs_snn, "cnn")
    with torch.no_grad():
        sinabs_snn(sinabs_input())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        small_ann()(torch.rand(1, 2, 8, 8))
    snap = monitor.read()
    assert snap["energy"]["ann_macs"] == counter.get_total_flops() / 2
    monitor.detach()


# -- spikingjelly -----------------------------------------------------------------
def _sum_pool_then_conn(spikes, pool: int, conv) -> float:
    """Synops of spikes entering ``conv`` after sum pooling, the SNNAnalyzer way
    (transposed convolution of ones as the connection map)."""
    pooled = F.avg_pool2d(spikes, pool) * pool * pool
    with torch.no_grad():
        return _conn_weighted(pooled, conv)


def _conn_weighted(pooled, conv) -> float:
    deconv = nn.ConvTranspose2d(conv.out_channels, conv.in_channels, conv.kernel_size,
                                stride=conv.stride, padding=conv.padding, bias=False)
    deconv.weight.data.fill_(1.0)
    out = conv(pooled)
    conn = deconv(torch.ones_like(out), output_size=pooled.shape)
    return float((pooled * conn).sum())


def test_spikingjelly_single_step_converted_model():
    import spikingjelly  # noqa: F401
    from spikingjelly.activation_based import ann2snn, functional, neuron

    ann = small_ann()
    loader = [(torch.rand(4, 2, 8, 8), torch.zeros(4))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snn = ann2snn.Converter(ann2snn.RateCodingRecipe(loader, mode="max")).convert(ann)
    recorder = OutputRecorder(snn, lambda m: isinstance(m, neuron.IFNode))
    monitor = monitor_model(snn, "sj")
    torch.manual_seed(2)
    x = torch.rand(B, 2, 8, 8) * 2
    with torch.no_grad():
        for _ in range(2):  # two sequences of T steps, reset in between
            for _ in range(T):
                snn(x)
            functional.reset_net(snn)
    snap = monitor.read()
    rows = by_layer(snap)
    names = ["spiking_0.if_node", "spiking_1.if_node", "spiking_2.if_node"]
    assert list(rows) == names
    for name in names:
        assert rows[name]["spikes"] == recorder.total(name) > 0
        assert rows[name]["timesteps"] == 2 * T
    assert snap["inferences"] == 2 * B
    conv, linear = snn.get_submodule("3"), snn.get_submodule("6")
    expected0 = sum(_sum_pool_then_conn(s, 2, conv) for s in recorder.outputs[names[0]])
    expected1 = recorder.total(names[1]) * linear.out_features
    assert rel(rows[names[0]]["synops"], expected0) < 1e-6
    assert rel(rows[names[1]]["synops"], expected1) < 1e-6
    recorder.remove()
    monitor.detach()


def test_spikingjelly_multi_step():
    import spikingjelly  # noqa: F401
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(3)
    net = nn.Sequential(layer.Linear(6, 5), neuron.LIFNode(), layer.Linear(5, 3),
                        neuron.IFNode())
    functional.set_step_mode(net, "m")
    recorder = OutputRecorder(net, lambda m: isinstance(m, neuron.BaseNode))
    monitor = monitor_model(net, "sjm")
    xs = torch.rand(7, 2, 6) * 2  # (T, B, features)
    with torch.no_grad():
        net(xs)
        functional.reset_net(net)
        net(xs)
    snap = monitor.read()
    rows = by_layer(snap)
    assert rows["1"]["spikes"] == recorder.total("1") > 0
    assert rows["3"]["spikes"] == recorder.total("3")
    assert rows["1"]["synops"] == recorder.total("1") * 3
    assert rows["1"]["neurons"] == 5 and rows["1"]["timesteps"] == 14
    assert snap["inferences"] == 4
    assert rows["1"]["membrane_rows"] == 2 and len(rows["1"]["membrane_sample"]) == 2 * 5
    monitor.detach()


# -- a model that is itself one spiking layer ----------------------------------------
def _one_layer(kind: str):
    """(layer, one sequence of 6 steps, batch 3, 10 features -> its spike outputs)."""
    from spikingjelly.activation_based import functional, neuron

    if kind in ("m", "s"):
        net = neuron.IFNode(step_mode=kind)

        def run(xs):
            outs = [net(xs)] if kind == "m" else [net(x) for x in xs]
            functional.reset_net(net)
            return outs
    elif kind == "sinabs":
        import sinabs.layers as sl

        net = sl.IAFSqueeze(batch_size=3)

        def run(xs):  # (B*T, ...) in and out
            out = net(xs.transpose(0, 1).reshape(-1, xs.shape[-1]))
            net.reset_states()
            return [out]
    else:
        import snntorch as snn

        net = snn.Leaky(beta=0.8)

        def run(xs):
            mem, outs = net.reset_mem(), []
            for x in xs:
                spk, mem = net(x, mem)
                outs.append(spk)
            return outs
    return net, run


@pytest.mark.parametrize("kind", ["m", "s", "sinabs", "snntorch"])
def test_a_model_that_is_one_spiking_layer_counts_its_spikes(kind):
    """The layer's own forward is the model's: its output is counted (no
    consumer in the model, so no synops), forward by forward."""
    torch.manual_seed(5)
    net, run = _one_layer(kind)
    monitor = monitor_model(net, "one")
    spikes = 0.0
    with torch.no_grad():
        for _ in range(3):  # the first forward is the traced discovery pass
            spikes += float(sum(o.sum() for o in run(torch.rand(6, 3, 10) * 2)))
    snap = monitor.read()
    (row,) = snap["layers"]
    assert row["spikes"] == spikes > 0
    assert row["neurons"] == 10 and row["synops"] == 0
    assert row["timesteps"] == 3 * 6 and snap["inferences"] == 3 * 3
    monitor.detach()
    assert taps_on(net) == 0 and not net._forward_hooks and not net._forward_pre_hooks


# -- snntorch ------------------------------------------------------------------------
def test_snntorch_leaky():
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(6, 8), snn.Leaky(beta=0.8)
            self.fc2, self.lif2 = nn.Linear(8, 3), snn.Leaky(beta=0.8)

        def forward(self, x, mem1, mem2):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            return spk2, mem1, mem2

    torch.manual_seed(4)
    net = Net()
    recorder = OutputRecorder(net, lambda m: isinstance(m, snn.Leaky))
    monitor = monitor_model(net, "snt")
    with torch.no_grad():
        for _ in range(3):  # three sequences of T steps
            mem1, mem2 = net.lif1.reset_mem(), net.lif2.reset_mem()
            for _ in range(T):
                _, mem1, mem2 = net(torch.rand(2, 6) * 2, mem1, mem2)
    snap = monitor.read()
    rows = by_layer(snap)
    assert rows["lif1"]["spikes"] == recorder.total("lif1") > 0
    assert rows["lif1"]["synops"] == recorder.total("lif1") * 3
    assert rows["lif1"]["neuron_type"] == "Leaky" and rows["lif1"]["timesteps"] == 3 * T
    assert snap["inferences"] == 3 * 2  # sequences x batch, from the reset_mem() calls
    monitor.detach()


# -- the Spikeformer kit's neuron (spikeformer.neurons.LifNeuron: (B, T, ...) in and out) --
def test_seed_kit_lif_neuron(kits):
    from spikeformer.neurons import LifNeuron

    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 6), LifNeuron(), nn.Linear(6, 2), LifNeuron())
    recorder = OutputRecorder(net, lambda m: isinstance(m, LifNeuron))
    monitor = monitor_model(net, "kit")
    with torch.no_grad():
        net(torch.rand(B, T, 4) * 2)
    snap = monitor.read()
    rows = by_layer(snap)
    assert rows["1"]["spikes"] == recorder.total("1") > 0
    assert rows["1"]["synops"] == recorder.total("1") * 2
    assert rows["1"]["neurons"] == 6 and rows["1"]["timesteps"] == T
    assert snap["inferences"] == B
    monitor.detach()


# -- knobs and lifecycle -----------------------------------------------------------------
def deep_sinabs(layers: int):
    import sinabs.layers as sl
    parts = []
    for _ in range(layers):
        parts += [nn.Linear(6, 6), sl.IAFSqueeze(batch_size=2)]
    return nn.Sequential(*parts)


def test_layer_cap_folds_the_rest_into_other():
    torch.manual_seed(6)
    net = deep_sinabs(5)
    recorder = OutputRecorder(net, lambda m: type(m).__name__ == "IAFSqueeze")
    monitor = monitor_model(net, "deep", max_layers=2)
    with torch.no_grad():
        net(torch.rand(2 * T, 6) * 3)
    rows = by_layer(monitor.read())
    assert list(rows) == ["1", "3", "other"]
    assert rows["other"]["neuron_type"] == "IAFSqueeze"
    assert rows["other"]["spikes"] == sum(recorder.total(n) for n in ("5", "7", "9"))
    assert rows["other"]["neurons"] == 18
    monitor.detach()


def test_sampling_counts_one_forward_in_n(sinabs_snn):
    recorder = OutputRecorder(sinabs_snn, lambda m: type(m).__name__ == "IAFSqueeze")
    monitor = monitor_model(sinabs_snn, "cnn", sample_every=3)
    with torch.no_grad():
        for seed in range(6):
            sinabs_snn(sinabs_input(seed))
    snap = monitor.read()
    expected = sum(recorder.outputs["1"][i].sum().item() for i in (0, 3))
    assert by_layer(snap)["1"]["spikes"] == expected
    assert snap["forwards"] == 2 and snap["inferences"] == 2 * B
    recorder.remove()
    monitor.detach()


def test_sampling_single_step_samples_whole_sequences():
    import spikingjelly  # noqa: F401
    from spikingjelly.activation_based import functional, layer, neuron

    net = nn.Sequential(layer.Linear(4, 5), neuron.IFNode())
    monitor = monitor_model(net, "sj", sample_every=2)
    with torch.no_grad():
        for _ in range(4):
            for _ in range(T):
                net(torch.rand(B, 4) * 2)
            functional.reset_net(net)
    snap = monitor.read()
    assert snap["inferences"] == 2 * B
    assert by_layer(snap)["1"]["timesteps"] == 2 * T
    monitor.detach()


def _our_hooks(model) -> int:
    from opentelemetry_instrumentation_spikeformer.monitor import accumulate, synops

    owners = (accumulate.LayerState, synops.Topology)
    count = 0
    for module in model.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            count += sum(isinstance(getattr(h, "__self__", None), owners) for h in hooks.values())
        count += taps_on(module)
    return count


def test_detach_removes_every_hook(sinabs_snn):
    before = _our_hooks(sinabs_snn)
    with monitor_model(sinabs_snn, "cnn") as monitor:
        assert _our_hooks(sinabs_snn) > before
        with torch.no_grad():
            sinabs_snn(sinabs_input())
        spikes = monitor.read()["totals"]["spikes"]
    assert not monitor.attached
    assert _our_hooks(sinabs_snn) == before == 0
    with torch.no_grad():
        sinabs_snn(sinabs_input(2))
    assert monitor.read()["totals"]["spikes"] == spikes


def test_inference_mode_then_no_grad(sinabs_snn):
    monitor = monitor_model(sinabs_snn, "cnn")
    with torch.inference_mode():
        sinabs_snn(sinabs_input())
    with torch.no_grad():
        sinabs_snn(sinabs_input(2))
    out = sinabs_snn(sinabs_input(3))  # with autograd on: no graph through our counts
    assert out.requires_grad
    assert monitor.read()["layers"][0]["forwards"] == 3
    monitor.detach()


# -- no host-device sync on the forward path -----------------------------------------
from sync_guard import sync_guard  # noqa: E402,F401 (fixture)


def test_forward_path_never_syncs(sync_guard, monkeypatch, sinabs_snn):
    import spikingjelly  # noqa: F401
    import snntorch
    from spikingjelly.activation_based import functional, layer, neuron

    sj = nn.Sequential(layer.Linear(4, 5), neuron.IFNode())
    sjm = nn.Sequential(layer.Linear(4, 5), neuron.LIFNode())
    functional.set_step_mode(sjm, "m")
    snt = nn.Sequential(nn.Linear(4, 5), snntorch.Leaky(beta=0.9, init_hidden=True))
    monitors = [monitor_model(m, n, sample_every=2) for m, n in
                ((sinabs_snn, "a"), (sj, "b"), (sjm, "c"), (snt, "d"))]
    with torch.no_grad():
        for _ in range(3):
            sinabs_snn(sinabs_input())
            for _ in range(T):
                sj(torch.rand(2, 4) * 2)
                snt(torch.rand(2, 4) * 2)
            functional.reset_net(sj)
            sjm(torch.rand(T, 2, 4) * 2)
    assert sync_guard == []
    # read() is where the transfer happens: the guard does see it there.
    monitors[0].read()
    assert any(c.startswith("tolist") or c.startswith("cpu") for c in sync_guard)
    for monitor in monitors:
        monitor.detach()


def test_a_failing_hook_never_breaks_the_forward(sinabs_snn, monkeypatch, caplog):
    from opentelemetry_instrumentation_spikeformer.monitor import tally

    def forward(mode=torch.no_grad):
        for layer in sinabs_snn.modules():
            if hasattr(layer, "reset_states"):
                layer.reset_states()
        with mode():
            return sinabs_snn(sinabs_input())

    forward()  # initialise the states so that every later forward starts alike
    expected = forward()

    def broken(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(tally.Tally, "on_source", broken)
    monkeypatch.setattr(tally.Tally, "take", broken)
    monkeypatch.setattr(tally.Tally, "flush", broken)
    monitor = monitor_model(sinabs_snn, "cnn")
    assert torch.equal(forward(), expected)  # the traced discovery pass
    assert torch.equal(forward(), expected)  # a counted forward: the hook fails
    # small outputs are counted together at the forward's end, so it is that hook's
    assert any("spike monitor forward end" in r.getMessage() for r in caplog.records)
    # inference tensors are counted in the layer's hook
    assert torch.equal(forward(torch.inference_mode), expected)
    assert any("spike monitor hook" in r.getMessage() for r in caplog.records)
    monitor.detach()


def test_input_signature_is_shapes_dtypes_devices_and_types(monkeypatch):
    """A plan per input signature: tensors by shape, dtype and device (also in
    lists and keyword arguments), other values by type name."""
    from opentelemetry_instrumentation_spikeformer.monitor import synops

    monkeypatch.setattr(synops, "_TENSOR", torch.Tensor)  # bound by the first Topology
    cpu, f32, f64 = torch.device("cpu"), torch.float32, torch.float64
    x, y = torch.zeros(2, 3), torch.zeros(4, dtype=f64)
    assert synops._signature((x,), {}) == (((2, 3), f32, cpu),)
    assert synops._signature((torch.nn.Parameter(x),), {}) == (((2, 3), f32, cpu),)
    assert synops._signature((x, y), {}) == (((2, 3), f32, cpu), ((4,), f64, cpu))
    assert synops._signature((x,), {"k": 5}) == (((2, 3), f32, cpu), "int")
    assert synops._signature((x,), {"k": y}) == (((2, 3), f32, cpu), ((4,), f64, cpu))
    assert synops._signature(([x, 3],), {}) == (((2, 3), ()),)
    assert synops._signature((3.0,), {}) == ("float",)
    assert synops._signature((), {}) == ()
