"""Core mechanisms the chip toolchains use, on a small module made here: named
child steps, a step that opens its own operation when called alone, a row that
declines a call, and hooks that read the call's object and arguments."""

from __future__ import annotations

import gc
import pickle
import sys
import types
import weakref

import pytest

from opentelemetry_instrumentation_spikeformer.core.attributes import COMPILATION
from opentelemetry_instrumentation_spikeformer.core.patching import PatchSession
from opentelemetry_instrumentation_spikeformer.core.scope import get_meter, get_tracer
from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
from opentelemetry_instrumentation_spikeformer.core.targets import (
    STAGE as STAGE_ROLE, RowHooks, Target,
)
from opentelemetry_instrumentation_spikeformer.core.telemetry import Telemetry

MODULE = "acme_toolchain_for_core_tests"


class Board:
    def __init__(self, cores):
        self.cores = cores


class Allocator:
    def __call__(self, model, n_chips):
        if n_chips < 1:
            raise ValueError("no chips")
        return Board(len(model) * n_chips)


def compile_net(net):
    return Allocator()(net, n_chips=2)


class Seen(RowHooks):
    def __init__(self):
        self.calls = []

    def applies(self, bound):
        return bound.get("n_chips") != 99

    def on_end(self, call, result, error):
        self.calls.append((call.target.role, type(call.instance).__name__,
                           dict(call.bound), result, error))
        call.span.set_attribute("acme.cores", getattr(result, "cores", -1))


@pytest.fixture
def toolchain(otel):
    module = types.ModuleType(MODULE)
    module.Allocator, module.Board, module.compile_net = Allocator, Board, compile_net
    sys.modules[MODULE] = module
    hooks = Seen()
    rows = [
        Target(MODULE, "compile_net", COMPILATION, "acme", model="net", hardware_value="loihi"),
        Target(MODULE, "Allocator.__call__", framework="acme", role=STAGE_ROLE, step="allocate",
               standalone=COMPILATION, model="model", hardware_value="loihi", hooks=hooks),
    ]
    telemetry = Telemetry(get_tracer(otel.tracer_provider), get_meter(otel.meter_provider),
                          load_settings())
    session = PatchSession(telemetry, rows, packages=())
    session.start()
    yield module, hooks
    session.stop()
    del sys.modules[MODULE]


def test_a_step_inside_an_operation_is_one_named_child(toolchain, otel):
    module, hooks = toolchain
    board = module.compile_net([1, 2, 3])
    assert board.cores == 6
    spans = {s.name: s for s in otel.spans()}
    assert set(spans) == {"spikeformer.compile acme", "spikeformer.stage allocate"}
    step = spans["spikeformer.stage allocate"]
    assert step.parent.span_id == spans["spikeformer.compile acme"].context.span_id
    assert step.attributes["acme.cores"] == 6
    assert otel.value("spike_compiler.compilations", framework="acme") == 1
    assert [(role, kind, bound["n_chips"]) for role, kind, bound, _, _ in hooks.calls] == [
        ("stage", "Allocator", 2)]


def test_a_step_called_alone_opens_its_operation(toolchain, otel):
    module, hooks = toolchain
    board = module.Allocator()([1, 2], n_chips=3)
    spans = {s.name: s for s in otel.spans()}
    assert set(spans) == {"spikeformer.compile acme", "spikeformer.stage allocate"}
    outer, step = spans["spikeformer.compile acme"], spans["spikeformer.stage allocate"]
    assert step.parent.span_id == outer.context.span_id
    assert outer.attributes["spikeformer.operation"] == COMPILATION
    assert outer.attributes["spikeformer.hardware.target"] == "loihi"
    assert outer.attributes["acme.cores"] == step.attributes["acme.cores"] == board.cores == 6
    assert otel.value("spike_compiler.compilations", framework="acme") == 1
    # hooks ran for both calls, the step first, each with the call's object and arguments
    assert [(role, bound["n_chips"]) for role, _, bound, _, _ in hooks.calls] == [
        ("stage", 3), ("op", 3)]


def test_a_failing_step_alone_fails_both_spans_with_the_same_exception(toolchain, otel):
    module, _ = toolchain
    with pytest.raises(ValueError, match="no chips") as raised:
        module.Allocator()([1], n_chips=0)
    spans = otel.spans()
    assert len(spans) == 2 and all(s.status.status_code.name == "ERROR" for s in spans)
    assert all(s.attributes["error.type"] == "ValueError" for s in spans)
    assert str(raised.value) == "no chips"
    assert otel.value("spike_compiler.compilation.errors", framework="acme") == 1


def test_a_row_may_decline_a_call(toolchain, otel):
    module, hooks = toolchain
    assert module.Allocator()([1], n_chips=99).cores == 99
    assert otel.spans() == [] and hooks.calls == []


def test_hooks_keep_nothing_after_the_call(toolchain):
    module, hooks = toolchain
    allocator = module.Allocator()
    ref = weakref.ref(allocator)
    allocator([1], n_chips=1)
    del allocator
    hooks.calls.clear()
    gc.collect()
    assert ref() is None


def test_step_span_name_defaults_to_the_callable():
    row = Target("m", "Recipe.finalize", framework="x", role=STAGE_ROLE)
    assert row.span_name == "spikeformer.stage finalize"
    assert Target("m", "A.__call__", framework="x", role=STAGE_ROLE, step="allocate").span_name \
        == "spikeformer.stage allocate"
    assert row.standalone_row() is None


def test_wrapped_methods_pickle_as_lookups(toolchain, otel):
    """A wrapped method pickles as ``getattr(instance or class, name)``."""
    module, _ = toolchain
    bound = pickle.loads(pickle.dumps(module.Allocator().__call__))
    assert bound([1, 2], n_chips=2).cores == 4
    unbound = pickle.loads(pickle.dumps(module.Allocator.__call__))
    assert unbound(Allocator(), [1], n_chips=3).cores == 3
    assert [s.name for s in otel.spans()].count("spikeformer.stage allocate") == 2
