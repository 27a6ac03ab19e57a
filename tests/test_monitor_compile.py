"""A monitored model run under ``torch.compile`` (the zero-code path converts,
the monitor attaches to the result, the user compiles after; or the compiled
module is monitored). Counting would need the discovery pass, an eager forward
traced under a dispatch mode, and Dynamo never compiles a frame it first met
under one: the model would quietly run uncompiled. So it is not counted: its
outputs are the unmonitored model's, Dynamo still compiles it, nothing of ours
is traced into its graphs, and one warning says so. An eager forward of the
same model is counted as before."""

from __future__ import annotations

import copy
import logging
import shutil
import warnings

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, neuron

import dataflow_models as M
from opentelemetry_instrumentation_spikeformer.monitor import monitor_model


PACKAGE = "opentelemetry_instrumentation_spikeformer"


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), neuron.IFNode(v_threshold=0.5), nn.Linear(16, 4),
                         neuron.IFNode(v_threshold=0.5))


def _toy_input():
    return torch.rand(4, 8, generator=torch.Generator().manual_seed(3)) * 3


def _eager_spikes(x, n):
    """(forwards, spikes) of an eager monitored toy after ``n`` forwards."""
    eager = _toy()
    reference = monitor_model(eager, "eager")
    _forwards(eager, eager, x, n=n)
    return _spikes(reference)


def _forwards(model, root, x, n=3):
    outs = []
    for _ in range(n):
        with torch.no_grad():
            outs.append(model(x))
        functional.reset_net(root)
    return outs


def _spikes(monitor):
    return monitor.forwards, sum(r["spikes"] for r in monitor.read()["layers"])


def _check(base, x, backend, caplog, capfd, outer=False, fullgraph=False):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # (no graph of another test's model to reuse)
    eager = copy.deepcopy(base)
    eager_out = _forwards(eager, eager, x)
    capfd.readouterr()
    caplog.clear()
    counters.clear()
    model = copy.deepcopy(base)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if outer:  # monitor the compiled module
                compiled = torch.compile(model, backend=backend, fullgraph=fullgraph)
                monitor = monitor_model(compiled, "compiled")
            else:  # the zero-code order: monitored at conversion, compiled after
                monitor = monitor_model(model, "compiled")
                compiled = torch.compile(model, backend=backend, fullgraph=fullgraph)
            outs = _forwards(compiled, model, x)
            graphs = counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
    printed = capfd.readouterr()
    same = torch.equal if backend == "eager" else torch.allclose  # (inductor fuses: rounding)
    assert all(same(a, b) for a, b in zip(outs, eager_out))
    assert graphs >= 1  # Dynamo compiled the model
    assert _spikes(monitor) == (0, 0)
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    ours = [r.getMessage() for r in logged if r.name.startswith(PACKAGE)]
    assert len(ours) == 1 and "runs under torch.compile" in ours[0], ours
    # (others may warn about the model's own code: never about ours)
    assert [r.getMessage() for r in logged if not r.name.startswith(PACKAGE)
            and "spikeformer" in r.getMessage()] == []
    # (Dynamo warns about what it traces: none of our code may be in its sight)
    assert [str(w.message) for w in caught if "spikeformer" in str(w.message)] == []
    assert printed.out == "" and printed.err == ""
    _forwards(model, model, x, n=2)  # the same model, eager: counted
    forwards, spikes = _spikes(monitor)
    assert forwards == (0 if outer else 2) and (outer or spikes > 0)
    assert monitor.inferences == (0 if outer else 2 * x.shape[0])  # two sequences
    monitor.detach()
    return graphs


@pytest.mark.parametrize("fullgraph", [False, True])
@pytest.mark.parametrize("name", sorted(M.TRANSFORMERS))
def test_a_transformer_compiled_after_attach_is_compiled_not_counted(name, fullgraph, caplog,
                                                                     capfd):
    graphs = _check(M.TRANSFORMERS[name](), M.image(1), "eager", caplog, capfd,
                    fullgraph=fullgraph)
    assert graphs == 1  # (nothing of ours breaks the graph)


def test_a_single_step_model_compiled_after_attach_is_compiled_not_counted(caplog, capfd):
    _check(_toy(), _toy_input(), "eager", caplog, capfd)


@pytest.mark.parametrize("outer", [False, True])
def test_fullgraph_compiles_one_graph_with_nothing_of_ours_in_it(outer, caplog, capfd):
    """``fullgraph=True`` makes any graph break an error: our hooks must not
    break the user's graph (they only set attributes there), nor log in it."""
    assert _check(_toy(), _toy_input(), "eager", caplog, capfd, outer=outer, fullgraph=True) == 1


def test_a_compiled_module_monitored_is_compiled_not_counted(caplog, capfd):
    _check(_toy(), _toy_input(), "eager", caplog, capfd, outer=True)


class _Encoded(nn.Module):
    """Calls its encoder by method (a class-level method tap, not a call tap),
    as spikingjelly's Qwen2SNNModel does."""

    def __init__(self):
        from spikingjelly.activation_based.ann2snn.qcfs import SignedQCFSSequenceEncoder

        super().__init__()
        self.encoder = SignedQCFSSequenceEncoder(scale=torch.full((6,), 0.25), time_steps=4)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.encoder.encode(x))


def test_a_model_calling_its_encoder_by_method_compiled_after_attach(caplog, capfd):
    torch.manual_seed(0)
    _check(_Encoded(), torch.randn(2, 6), "eager", caplog, capfd)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="inductor needs a C++ compiler")
def test_inductor_compiled_after_attach_is_compiled_not_counted(caplog, capfd):
    _check(_toy(), _toy_input(), "inductor", caplog, capfd)


def test_a_single_step_model_compiled_after_attach_compiles_once(caplog, capfd):
    """Twelve sequences of four steps: the lead layer's hooks (does a sequence
    start?) stay out of the graphs too, or Dynamo would guard on our sequence
    count and recompile at each one, up to its limit."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    x = _toy_input()
    graphs = {}
    for monitored in (False, True):
        torch._dynamo.reset()
        counters.clear()
        model = _toy()
        monitor = monitor_model(model, "m") if monitored else None
        compiled = torch.compile(model, backend="eager")
        capfd.readouterr()
        try:
            for _ in range(12):
                for _ in range(4):
                    with torch.no_grad():
                        compiled(x)
                functional.reset_net(model)
            graphs[monitored] = counters["stats"]["unique_graphs"]
        finally:
            torch._dynamo.reset()
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
    assert graphs[False] >= 1 and graphs[True] == graphs[False]  # (no graph break of ours)
    assert monitor.sequencer.sequences == 0 and _spikes(monitor) == (0, 0)
    monitor.detach()


def test_a_layer_compiled_before_attach_is_counted(caplog):
    """``module.compile()`` on a spiking layer of an eager model (its hook runs
    inside the compiled call): counted as eagerly."""
    import torch._dynamo

    x = _toy_input()
    expected = _eager_spikes(x, 4)
    torch._dynamo.reset()
    model = _toy()
    try:
        model[1].compile(backend="eager")
        monitor = monitor_model(model, "m")
        _forwards(model, model, x, n=4)
    finally:
        torch._dynamo.reset()
    assert _spikes(monitor) == expected and expected[1] > 0
    assert not [r for r in caplog.records if "torch.compile" in r.getMessage()]
    monitor.detach()


def test_a_layer_compiled_after_attach_is_counted_without_a_graph_break():
    """``module.compile(fullgraph=True)`` on a multi-step spiking layer after
    the monitor's first forward: the next collection gives the layer a forward
    hook, which Dynamo traces inside the layer's graph while a forward is being
    counted. Nothing there may break the graph (``fullgraph`` would raise), and
    the layer is counted from then on."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    def model_and_input():
        torch.manual_seed(0)
        return (nn.Sequential(nn.Linear(8, 16), neuron.IFNode(v_threshold=0.5, step_mode="m"),
                              nn.Linear(16, 4)), torch.rand(2, 4, 8) * 3)

    plain, x = model_and_input()
    reference = monitor_model(plain, "eager")
    expected = _forwards(plain, plain, x, n=4)
    model, _ = model_and_input()
    monitor = monitor_model(model, "m")
    torch._dynamo.reset()
    try:
        _forwards(model, model, x, n=1)  # (the discovery pass, eager)
        model[1].compile(backend="eager", fullgraph=True)
        monitor.read()  # (the call tap was replaced: a forward hook from now on)
        counters.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outs = _forwards(model, model, x, n=3)
        graphs = counters["stats"]["unique_graphs"]
    finally:
        torch._dynamo.reset()
    assert all(torch.equal(a, b) for a, b in zip(outs, expected[1:]))
    # (the layer's forward and our hook, each its own frame: Dynamo compiles
    # the frames a compiled _call_impl calls; no break, no recompile)
    assert graphs <= 2 and not counters["graph_break"], dict(counters["graph_break"])
    assert [str(w.message) for w in caught] == []
    assert _spikes(monitor) == _spikes(reference) and _spikes(monitor)[1] > 0
    monitor.detach()


def test_the_compile_warning_reaches_a_collection_that_ran_first(otel, caplog):
    """A collection re-reads a monitor only when its version moved; the first
    forward under torch.compile (not counted) moves it, so the warning, logged
    by the read, is not lost when the only collections come between compiled
    forwards."""
    import torch._dynamo

    model = _toy()
    monitor_model(model, "m", meter_provider=otel.meter_provider)
    otel.reader.get_metrics_data()  # before any forward
    compiled = torch.compile(model, backend="eager")
    try:
        for _ in range(2):
            _forwards(compiled, model, _toy_input(), n=1)
            otel.reader.get_metrics_data()
    finally:
        torch._dynamo.reset()
    said = [r for r in caplog.records if "runs under torch.compile" in r.getMessage()]
    assert len(said) == 1


def test_a_model_in_a_compiled_function_that_dynamo_skips_is_counted(caplog, capfd):
    """A compiled function called under the user's own dispatch mode (a FLOP
    counter's, say): Dynamo runs it eagerly, and so the model; counted as
    eagerly, our own frames not compiled (nothing logged or printed)."""
    import torch._dynamo
    from torch.utils._python_dispatch import TorchDispatchMode

    class UserMode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    x = _toy_input()
    expected = _eager_spikes(x, 3)
    torch._dynamo.reset()
    model = _toy()
    monitor = monitor_model(model, "m")
    step = torch.compile(lambda t: model(t), backend="eager")
    capfd.readouterr()
    caplog.clear()
    try:
        with UserMode():
            _forwards(step, model, x)
    finally:
        torch._dynamo.reset()
    printed = capfd.readouterr()
    assert _spikes(monitor) == expected and expected[1] > 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert printed.out == "" and printed.err == ""
    monitor.detach()
