"""Every neuron, spike encoder and ann2snn operator class of spikingjelly 2.0.0,
sinabs 3.1.3 and snntorch 1.0 has a rule in its framework extension, and the
rule's layout, output kind and state attribute hold on a real forward."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import warnings

import pytest

import torch
import spikingjelly  # noqa: F401
import sinabs  # noqa: F401
import snntorch  # noqa: F401
nn = torch.nn

from opentelemetry_instrumentation_spikeformer import frameworks  # noqa: E402
from opentelemetry_instrumentation_spikeformer.frameworks import base as fb  # noqa: E402
from opentelemetry_instrumentation_spikeformer.monitor import neurons  # noqa: E402

os.environ.setdefault("PIP_NO_INDEX", "1")  # the samna stub must never reach the network
T, B, C = 4, 2, 6


# --------------------------------------------------------------------------- enumeration
def _walk(pkg_name: str, skip=("backend", "samna", "dynapcnn", "spikeplot", "spikevision",
                                "examples", "model", "distributed", "cuda", "triton",
                                "lava", "lynxi", "nir_exchange", "datasets", "memopt")):
    pkg = importlib.import_module(pkg_name)
    out = [pkg]
    for info in pkgutil.iter_modules(pkg.__path__, pkg_name + "."):
        if any(s in info.name.split(".")[-1] for s in skip):
            continue
        try:
            mod = importlib.import_module(info.name)
        except Exception:
            continue
        out.append(mod)
        if info.ispkg:
            out.extend(_walk(info.name, skip))
    return out


NEURONISH_SJ = ("spikingjelly.activation_based.neuron", "spikingjelly.activation_based.encoding",
                "spikingjelly.activation_based.ann2snn")


def all_classes():
    mods = []
    for name in ("spikingjelly.activation_based.neuron", "spikingjelly.activation_based.ann2snn"):
        mods += _walk(name)
    mods.append(importlib.import_module("spikingjelly.activation_based.encoding"))
    import sinabs.layers  # noqa: F401
    mods += _walk("sinabs.layers")
    mods += _walk("snntorch._neurons")
    mods.append(importlib.import_module("snntorch._layers.graded_spikes"))
    seen = {}
    for mod in mods:
        for obj in vars(mod).values():
            if (inspect.isclass(obj) and issubclass(obj, nn.Module)
                    and obj.__module__.split(".")[0] in ("spikingjelly", "sinabs", "snntorch")):
                seen[obj] = None
    return sorted(seen, key=lambda c: (c.__module__, c.__qualname__))


# Classes that are not spike sources at all (layers, hooks, helpers, containers):
# they must NOT match a source row.
NOT_SOURCES = {
    "VoltageHook", "ChannelVoltageHook", "VoltageScaler", "ChannelVoltageScaler",
    "LocalThresholdBalancingHook", "Qwen2SNNModel", "_Qwen2Decoder", "_StepModeTensorOp",
    "SpikeZIPEmbedding", "SpikeZIPRobertaSelfAttention", "SpikeZIPViTSelfAttention",
    "ChannelShift", "Cropping2dLayer", "Merge", "NeuromorphicReLU", "SpikingMaxPooling2dLayer",
    "SumPool2d", "QuantizeLayer", "FlattenTime", "Repeat", "UnflattenTime", "Network",
    "GradedSpikes", "RecurrentOneToOne", "LeakyKernel", "SpikeTime", "STDPLearner",
    "_STAThresholdObserver", "_ObserverBase", "SpikeZIPQuantizer", "QCFSQuantizer",
    "_STAQuantizer", "MPBNBaseNode",
}


def test_every_class_has_a_row_or_is_not_a_source():
    missing = []
    for klass in all_classes():
        row = frameworks.rule_for_class(klass)
        name = klass.__name__
        if name in NOT_SOURCES or not _looks_like_source(klass):
            continue
        if row is None:
            missing.append(f"{klass.__module__}.{klass.__qualname__}")
    assert missing == []


def test_a_row_entered_by_method_names_a_plain_function():
    """A method tap replaces a plain function (``hooks.method_tap``; anything
    else would go uncounted)."""
    import types

    entered = [(klass, row.entry) for klass in all_classes()
               if (row := frameworks.rule_for_class(klass)) is not None and row.entry != "forward"]
    assert entered  # (SignedQCFSSequenceEncoder.encode)
    for klass, entry in entered:
        found = next(k.__dict__[entry] for k in klass.__mro__ if entry in k.__dict__)
        assert type(found) is types.FunctionType, (klass, entry)


def _looks_like_source(klass) -> bool:
    mod = klass.__module__
    name = klass.__name__
    if mod.startswith("spikingjelly"):
        return (".neuron" in mod or ".encoding" in mod or "Encoder" in name
                or ".operators" in mod or "spikezip" in mod or name.endswith("Node"))
    if mod.startswith("sinabs"):
        return any(b.__name__ == "StatefulLayer" for b in klass.__mro__) or "Spike" in name
    if mod.startswith("snntorch"):
        return "_neurons" in mod
    return False


# --------------------------------------------------------------------------- factories
def sj():
    from spikingjelly.activation_based import neuron
    return neuron


def _table(K=4):
    from spikingjelly.activation_based.neuron.few_spike import FewSpikeTable
    theta = [2 ** -(k + 1) for k in range(K)]
    return FewSpikeTable(theta=theta, h=theta, d=theta)


def factories():
    """name -> (constructor, input kind). Input kinds: 'sj' (either step mode),
    'm' (multi-step only [T,B,C]), 's' (single-step [B,C]), 'sinabs' ([B,T,C]),
    'squeeze' ([B*T,C]), 'snn' (snntorch per step [B,C])."""
    import sinabs.layers as sl
    import sinabs.layers.alif
    import snntorch as snt
    import sinabs
    from spikingjelly.activation_based import encoding
    from spikingjelly.activation_based.ann2snn import operators as ops
    from spikingjelly.activation_based.ann2snn.qcfs import SignedQCFSSequenceEncoder
    from spikingjelly.activation_based.ann2snn.recipes.sta_transformer import _STASpikeEncoder
    from spikingjelly.activation_based.neuron import (dsr, few_spike, ilif, inter_layer_connection,
                                                      lif_variants, mpbn, noisy, psn, spikezip)
    n = sj()
    F = {
        "IFNode": (lambda: n.IFNode(), "sj"), "LIFNode": (lambda: n.LIFNode(), "sj"),
        "ParametricLIFNode": (lambda: n.ParametricLIFNode(), "sj"),
        "QIFNode": (lambda: n.QIFNode(), "sj"), "EIFNode": (lambda: n.EIFNode(), "sj"),
        "IzhikevichNode": (lambda: n.IzhikevichNode(), "sj"),
        "HalfThresholdIFNode": (lambda: n.HalfThresholdIFNode(), "sj"),
        "SimpleIFNode": (lambda: n.SimpleIFNode(), "sj"),
        "SimpleLIFNode": (lambda: n.SimpleLIFNode(tau=2.0, decay_input=True), "sj"),
        "KLIFNode": (lambda: n.KLIFNode(), "sj"),
        "ComplementaryLIFNode": (lambda: n.ComplementaryLIFNode(), "sj"),
        "CUBALIFNode": (lambda: n.CUBALIFNode(), "sj"),
        "RAFNode": (lambda: n.RAFNode(), "sj"),
        "ILIFNode": (lambda: ilif.ILIFNode(), "sj"),
        "LIAFNode": (lambda: lif_variants.LIAFNode(act=torch.sigmoid, threshold_related=False), "sj"),
        "GatedLIFNode": (lambda: lif_variants.GatedLIFNode(T=T, inplane=C), "m5"),
        "MPBNLIFNode": (lambda: mpbn.MPBNLIFNode(out_features=C, v_threshold=0.2), "sj"),
        "TernaryIFNode": (lambda: n.TernaryIFNode(), "sj"),
        "TernaryLIFNode": (lambda: n.TernaryLIFNode(), "sj"),
        "SLTTLIFNode": (lambda: n.SLTTLIFNode(), "sj"),
        "OTTTLIFNode": (lambda: n.OTTTLIFNode().eval(), "s"),
        "_OnlineLIFNode": None,  # private base of OTTT/SLTT
        "PSN": (lambda: psn.PSN(T=T), "m"),
        "MaskedPSN": (lambda: psn.MaskedPSN(k=2, T=T), "m"),
        "SlidingPSN": (lambda: psn.SlidingPSN(k=2), "sj"),
        "DSRIFNode": (lambda: dsr.DSRIFNode(T=T, v_threshold=0.3), "m"),
        "DSRLIFNode": (lambda: dsr.DSRLIFNode(T=T, v_threshold=0.31), "m"),
        "ILCIFNode": (lambda: inter_layer_connection.ILCIFNode(act_dim=2, dec_pop_dim=3), "ilc"),
        "ILCLIFNode": (lambda: inter_layer_connection.ILCLIFNode(act_dim=2, dec_pop_dim=3), "ilc"),
        "ILCCUBALIFNode": (lambda: inter_layer_connection.ILCCUBALIFNode(act_dim=2, dec_pop_dim=3), "ilc"),
        "NoisyCUBALIFNode": (lambda: noisy.NoisyCUBALIFNode(num_node=C, T=T, is_training=False), "m"),
        "NoisyILCCUBALIFNode": (lambda: noisy.NoisyILCCUBALIFNode(act_dim=2, dec_pop_dim=3, T=T, is_training=False), "ilc"),
        "FewSpikeNode": (lambda: few_spike.FewSpikeNode(_table()), "fs"),
        "HGNode": (lambda: few_spike.HGNode([_table(), _table()], gate_thresholds=[0.5]), "fs"),
        "OutlierAwareThresholdNode": (lambda: few_spike.OutlierAwareThresholdNode(
            _table(), _table(), split_threshold=1.0), "fs"),
        "ActivationAwareIFNode": (lambda: n.ActivationAwareIFNode(v_threshold=torch.full((C,), 0.5)), "sj"),
        "STBIFNode": (lambda: spikezip.STBIFNode(q_threshold=0.5, level=8, sym=True), "sj"),
        "PoissonEncoder": (lambda: encoding.PoissonEncoder(), "enc01"),
        "LatencyEncoder": (lambda: encoding.LatencyEncoder(T=T), "enc01s"),
        "PeriodicEncoder": (lambda: encoding.PeriodicEncoder((torch.rand(T, B, C) > 0.5).float()), "periodic"),
        "WeightedPhaseEncoder": (lambda: encoding.WeightedPhaseEncoder(K=T), "enc01s"),
        "PopSpikeEncoderDeterministic": (lambda: encoding.PopSpikeEncoderDeterministic(
            obs_dim=2, pop_dim=3, spike_ts=T, mean_range=(-1, 1), std=0.5), "pop"),
        "PopSpikeEncoderRandom": (lambda: encoding.PopSpikeEncoderRandom(
            obs_dim=2, pop_dim=3, spike_ts=T, mean_range=(-1, 1), std=0.5), "pop"),
        "_STASpikeEncoder": (lambda: _STASpikeEncoder(threshold=torch.full((C,), 0.3)), "sj"),
        "SignedQCFSSequenceEncoder": (lambda: SignedQCFSSequenceEncoder(
            scale=torch.full((C,), 0.5), time_steps=T), "m"),
        "TDGELU": (lambda: ops.TDGELU(), "sj"), "TDSiLU": (lambda: ops.TDSiLU(), "sj"),
        "TDSoftmax": (lambda: ops.TDSoftmax(), "sj"),
        "TDLayerNorm": (lambda: ops.TDLayerNorm(C), "sj"),
        "TDRMSNorm": (lambda: ops.TDRMSNorm(C), "sj"),
        "TDLinear": (lambda: ops.TDLinear(C, 3), "sj"),
        "SNNMatrixOperator": (lambda: ops.SNNMatrixOperator(), "pair_mm"),
        "SNNElementWiseProduct": (lambda: ops.SNNElementWiseProduct(), "pair"),
        # sinabs
        "IAF": (lambda: sl.IAF(), "sinabs"), "LIF": (lambda: sl.LIF(tau_mem=5.0), "sinabs"),
        "ALIF": (lambda: sl.ALIF(tau_mem=5.0, tau_adapt=5.0), "sinabs"),
        "IAFRecurrent": (lambda: sl.IAFRecurrent(rec_connect=nn.Linear(C, C)), "sinabs"),
        "LIFRecurrent": (lambda: sl.LIFRecurrent(tau_mem=5.0, rec_connect=nn.Linear(C, C)), "sinabs"),
        "ALIFRecurrent": (lambda: sl.ALIFRecurrent(tau_mem=5.0, tau_adapt=5.0,
                                                  rec_connect=nn.Linear(C, C)), "sinabs"),
        "IAFSqueeze": (lambda: sl.IAFSqueeze(batch_size=B), "squeeze"),
        "LIFSqueeze": (lambda: sl.LIFSqueeze(tau_mem=5.0, batch_size=B), "squeeze"),
        "ALIFSqueeze": (lambda: sinabs.layers.alif.ALIFSqueeze(tau_mem=5.0, tau_adapt=5.0, batch_size=B), "squeeze"),
        "ExpLeak": (lambda: sl.ExpLeak(tau_mem=5.0), "sinabs"),
        "Img2SpikeLayer": (lambda: sl.Img2SpikeLayer(image_shape=(2, 3, 3), tw=T, norm=1.0), "img"),
        "Sig2SpikeLayer": (lambda: sl.Sig2SpikeLayer(channels_in=C, tw=1), "sig"),
        "ExpLeakSqueeze": (lambda: sl.ExpLeakSqueeze(tau_mem=5.0, batch_size=B), "squeeze"),
        # snntorch
        "Leaky": (lambda: snt.Leaky(beta=0.8), "snn"),
        "Synaptic": (lambda: snt.Synaptic(alpha=0.7, beta=0.8), "snn"),
        "Alpha": (lambda: snt.Alpha(alpha=0.8, beta=0.7), "snn"),
        "Lapicque": (lambda: snt.Lapicque(beta=0.8), "snn"),
        "RLeaky": (lambda: snt.RLeaky(beta=0.8, linear_features=C), "snn"),
        "RSynaptic": (lambda: snt.RSynaptic(alpha=0.7, beta=0.8, linear_features=C), "snn"),
        "SLSTM": (lambda: snt.SLSTM(C, C, threshold=0.02), "snn"),
        "SConv2dLSTM": (lambda: snt.SConv2dLSTM(2, 3, kernel_size=3, threshold=0.02), "snn_img"),
        "DeltaLeaky": (lambda: snt.DeltaLeaky(beta=0.8, init_hidden=True), "snn") if hasattr(snt, "DeltaLeaky") else None,
        "StateLeaky": (lambda: snt.StateLeaky(beta=0.8, channels=C), "m"),
        "LinearLeaky": (lambda: snt.LinearLeaky(beta=0.8, in_features=C, out_features=C), "m")
        if hasattr(snt, "LinearLeaky") else None,
        "LeakyParallel": (lambda: snt.LeakyParallel(input_size=C, hidden_size=C), "m"),
        "AssociativeLeaky": None,
    }
    return F


def _input(kind: str, mode: str):
    torch.manual_seed(0)
    if kind in ("sj", "m", "fs") and mode == "m":
        return (torch.randn(T, B, C) * 2 + 0.5,)
    if kind in ("sj", "s", "fs", "snn") and mode == "s":
        return (torch.randn(B, C) * 2 + 0.5,)
    if kind == "enc01" and mode == "m":
        return (torch.rand(T, B, C),)
    if kind in ("enc01", "enc01s") and mode == "s":
        return (torch.rand(B, C),)
    if kind == "pop":
        return (torch.rand(B, 2) * 2 - 1,)
    if kind == "ilc":
        return (torch.randn(T, B, 2 * 3) * 2 + 0.5,)
    if kind == "pair" and mode == "m":
        return (torch.randn(T, B, C), torch.randn(T, B, C))
    if kind == "pair_mm" and mode == "m":
        return (torch.randn(T, B, 3, C), torch.randn(T, B, C, 3))
    if kind == "sinabs":
        return (torch.randn(B, T, C) * 2 + 0.5,)
    if kind == "squeeze":
        return (torch.randn(B * T, C) * 2 + 0.5,)
    if kind == "m5" and mode == "m":
        return (torch.randn(T, B, C, 3, 3) * 2 + 0.5,)
    if kind == "periodic" and mode == "s":
        return ((torch.rand(T, B, C) > 0.5).float(),)
    if kind == "snn_img":
        return (torch.randn(B, 2, 5, 5) * 2 + 0.5,)
    if kind == "img":
        return (torch.rand(2, 3, 3),)
    if kind == "sig":
        return (torch.rand(C, T),)
    return None


def _observed_class(x: torch.Tensor) -> str:
    vals = set(torch.unique(x.detach().float()).tolist())
    if vals <= {0.0, 1.0}:
        return fb.BINARY
    if vals <= {-1.0, 0.0, 1.0}:
        return fb.SIGNED
    if all(v >= 0 and float(v).is_integer() for v in vals):
        return fb.COUNT
    return fb.SCALED


def _value_class_ok(declared: str, x: torch.Tensor) -> bool:
    """The declared class must be the tightest one the output shows (scaled and
    graded are both 'real-valued'; a count/signed class may show only {0,1})."""
    seen = _observed_class(x)
    if declared in (fb.SCALED, fb.GRADED):
        return seen == fb.SCALED
    if declared == fb.COUNT:
        return seen in (fb.BINARY, fb.COUNT)
    if declared == fb.SIGNED:
        return seen in (fb.BINARY, fb.SIGNED)
    return seen == declared


CASES = [(name, spec) for name, spec in factories().items() if spec is not None]


@pytest.mark.parametrize("name,spec", CASES, ids=[c[0] for c in CASES])
def test_row_layout_and_values_on_a_forward(name, spec):
    ctor, kind = spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = ctor()
    row = frameworks.module_rule(module)
    assert row is not None, name
    modes = ["s", "m"] if kind in ("sj", "fs", "enc01") else ["m" if kind in (
        "m", "m5", "ilc", "pair", "pair_mm") else "s"]
    if kind in ("m", "m5", "pair", "pair_mm") and hasattr(module, "step_mode"):
        try:
            module.step_mode = "m"
        except Exception:
            pass
    checked = 0
    spiked = False
    seen_classes: list = []
    for mode in modes:
        if hasattr(module, "step_mode") and kind in ("sj", "fs", "enc01"):
            try:
                module.step_mode = mode
            except Exception:
                continue
        if hasattr(module, "reset"):
            module.reset()
        args = _input(kind, mode)
        if args is None:
            continue
        layout = row.layout_of(module)
        calls = T if layout == fb.B and kind not in ("pop",) else 1
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                for _ in range(calls):
                    out = module(*args)
                    spiked = spiked or bool((neurons.spikes_of(out) != 0).any())
            except NotImplementedError:
                continue  # e.g. DSR* single step
        spikes = neurons.spikes_of(out)
        shape = tuple(spikes.shape)
        batch, steps, lead = neurons.batch_time(layout, module, shape)
        if kind == "pop":
            assert (steps, batch) == (T, B), (name, shape)
        elif kind == "ilc":
            assert (steps, batch) == (T, B), (name, shape)
        elif kind == "snn_img":
            assert batch == B and steps == 1, (name, shape)
        elif kind in ("img", "sig"):
            assert (batch, steps) == (1, T), (name, shape)
        elif kind in ("fs",) and mode == "m":
            assert (steps, batch) == (T, B), (name, shape, layout)
        else:
            assert batch == B, (name, layout, shape)
            exp_steps = T if (mode == "m" or kind in ("sinabs", "squeeze")) else 1
            assert steps == exp_steps, (name, layout, shape)
        values = row.output_kind(module)
        seen_classes.append(_observed_class(spikes))
        assert _value_class_ok(values, spikes) or (values in (fb.SCALED, fb.GRADED, fb.COUNT, fb.SIGNED)
                                                   and spikes.abs().sum() == 0), (
            name, values, torch.unique(spikes)[:10])
        spiked = spiked or bool((spikes != 0).any())
        if row.state:
            state = getattr(module, row.state, None)
            assert state is not None, (name, row.state)
        checked += 1
    assert checked, name
    if row.role in ("neuron", "encoder"):
        assert spiked, f"{name} never spiked: the test drive is too weak"


def test_non_spiking_rows_are_ignored():
    import sinabs.layers as sl
    from spikingjelly.activation_based import neuron
    assert frameworks.module_rule(sl.ExpLeak(tau_mem=2.0)).role == "ignore"
    assert frameworks.module_rule(sl.ExpLeakSqueeze(tau_mem=2.0, batch_size=1)).role == "ignore"
    assert frameworks.module_rule(neuron.NonSpikingIFNode()).role == "ignore"
    assert frameworks.module_rule(sl.IAFSqueeze(batch_size=1)).layout == fb.SQUEEZE
    assert frameworks.module_rule(sl.IAF()).layout == fb.BT


def test_memory_reset_is_visible():
    """spikingjelly reset: the state attribute goes back to a non-tensor."""
    from spikingjelly.activation_based import functional, neuron
    m = neuron.LIFNode()
    m(torch.rand(2, 3))
    assert torch.is_tensor(m.v)
    functional.reset_net(m)
    assert not torch.is_tensor(m.v)
