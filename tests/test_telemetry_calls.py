"""One wrapped call, measured, on rows made here: calibration counting through
forward pre-hooks, async rows handing their object and result to the row's
hooks, extension instruments and snapshot gauges. Expected values are written
out (span names, attribute values, counts by hand)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import types

import pytest
from opentelemetry import trace

import torch

from opentelemetry_instrumentation_spikeformer.core import metrics as m  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core.attributes import (  # noqa: E402
    COMPILATION, CONVERSION, EXPORT,
)
from opentelemetry_instrumentation_spikeformer.core.patching import PatchSession  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core.scope import get_meter, get_tracer  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core.settings import load_settings  # noqa: E402
from opentelemetry_instrumentation_spikeformer.core.targets import (  # noqa: E402
    CALIBRATION, STAGE, RowHooks, Target,
)
from opentelemetry_instrumentation_spikeformer.core.telemetry import Telemetry  # noqa: E402

MODULE = "acme_toolchain_for_telemetry_tests"


class Net(torch.nn.Module):
    def forward(self, x=None, *, y=None):
        return 0


class NoKeywordHooks:
    """A module-like whose pre-hook registration has no ``with_kwargs``."""

    def __init__(self):
        self.hooks = []

    def register_forward_pre_hook(self, hook):
        self.hooks.append(hook)


def calibrate(model, batches):
    for args, kwargs in batches:
        model(*args, **kwargs)
    return model


def calibrate_fx(model, fx_model, batches):
    for args, kwargs in batches:
        fx_model(*args, **kwargs)
        model(*args, **kwargs)
    return fx_model


class Recorder(RowHooks):
    def __init__(self):
        self.ends = []
        self.starts = []

    def on_start(self, call, bound):
        self.starts.append((call.target.qualname, call.span.name, dict(bound)))

    def on_end(self, call, result, error):
        self.ends.append((call.instance, result, error))


class Chip:
    def __init__(self, name):
        self.name = name

    async def compile(self, net):
        await asyncio.sleep(0)
        if net is None:
            raise ValueError("nothing to compile")
        return ("compiled", len(net))


def convert(model, fail=False):
    if fail:
        raise KeyError("unsupported layer " + "x" * 600)
    return model


class Outer:
    class Failure(Exception):
        """Its qualified name (``Outer.Failure``) is not its name."""


def export(model, timesteps, recipe="rate", layer=None, flag=True, samples=None):
    if layer == "boom":
        raise Outer.Failure("layer boom")
    return model


def _telemetry(otel):
    return Telemetry(get_tracer(otel.tracer_provider), get_meter(otel.meter_provider),
                     load_settings(environ={}))


def _module() -> types.ModuleType:
    """An empty module importable as MODULE (the tests fill in its functions)."""
    module = types.ModuleType(MODULE)
    sys.modules[MODULE] = module
    return module


@contextlib.contextmanager
def _running(session):
    """The session patching MODULE; stopped and MODULE gone afterwards."""
    session.start()
    try:
        yield
    finally:
        session.stop()
        sys.modules.pop(MODULE, None)


@pytest.fixture
def toolchain(otel):
    module = _module()
    module.calibrate, module.calibrate_fx, module.Chip = calibrate, calibrate_fx, Chip
    module.convert, module.export = convert, export
    recorder = Recorder()
    rows = [
        Target(MODULE, "calibrate", framework="acme", role=CALIBRATION, root_span=True),
        Target(MODULE, "calibrate_fx", framework="acme", role=CALIBRATION, root_span=True),
        Target(MODULE, "Chip.compile", COMPILATION, "acme", model="net",
               hardware="self.name", hooks=recorder),
        Target(MODULE, "convert", CONVERSION, "acme", model="model", hardware_value="speck2f"),
        Target(MODULE, "export", EXPORT, "acme", model="model", hardware_value="nir",
               timesteps="timesteps", recipe="recipe", layer="layer", direction="to_nir"),
    ]
    session = PatchSession(_telemetry(otel), rows, packages=())
    with _running(session):
        yield module, recorder, session


def _calibration_span(otel):
    (span,) = otel.spans("spikeformer.calibrate")
    return dict(span.attributes)


def test_calibration_counts_samples_and_batches(toolchain, otel, caplog):
    module, _, _ = toolchain
    net = Net()
    batches = [((torch.zeros(4, 3),), {}),  # positional: 4 samples
               ((), {"y": torch.zeros(5, 3)}),  # keyword only: 5
               ((None,), {"y": "text"}),  # nothing with a shape: one sample
               ((torch.zeros(()),), {"y": torch.zeros(2, 1)})]  # a 0-d shape is skipped: 2
    with caplog.at_level(logging.WARNING):
        assert module.calibrate(net, batches) is net
    attrs = _calibration_span(otel)
    assert attrs["spikeformer.calibration.samples"] == 12
    assert attrs["spikeformer.calibration.batches"] == 4
    assert attrs["spikeformer.framework"] == "acme"
    assert caplog.records == []
    net(torch.zeros(3, 1))  # the hook is gone after the call
    assert not net._forward_pre_hooks


def test_calibration_counts_the_fx_model_first(toolchain, otel):
    module, _, _ = toolchain
    model, fx_model = Net(), Net()
    module.calibrate_fx(model, fx_model, [((torch.zeros(3, 1),), {}), ((torch.zeros(7, 1),), {})])
    attrs = _calibration_span(otel)
    # only the fx model's forwards are counted (the plain one ran as often)
    assert (attrs["spikeformer.calibration.samples"],
            attrs["spikeformer.calibration.batches"]) == (10, 2)


@pytest.mark.parametrize("model", [object(), NoKeywordHooks()], ids=["plain", "no-kwargs"])
def test_calibration_of_a_model_without_torch_hooks_is_not_counted(toolchain, otel, caplog,
                                                                   model):
    module, _, _ = toolchain
    with caplog.at_level(logging.WARNING):
        assert module.calibrate(model, []) is model
    attrs = _calibration_span(otel)
    assert "spikeformer.calibration.samples" not in attrs
    assert "spikeformer.calibration.batches" not in attrs
    assert caplog.records == []  # nothing went wrong in our code


def test_async_row_hands_object_and_result_to_its_hooks(toolchain, otel):
    module, recorder, _ = toolchain
    chip = module.Chip("Loihi")
    assert asyncio.run(chip.compile([1, 2])) == ("compiled", 2)
    with pytest.raises(ValueError, match="nothing to compile") as raised:
        asyncio.run(chip.compile(None))
    assert recorder.ends == [(chip, ("compiled", 2), None), (chip, None, raised.value)]
    assert recorder.starts == [
        ("Chip.compile", "spikeformer.compile acme", {"net": [1, 2]}),
        ("Chip.compile", "spikeformer.compile acme", {"net": None})]
    spans = otel.spans("spikeformer.compile acme")
    assert [s.attributes["spikeformer.hardware.target"] for s in spans] == ["loihi", "loihi"]
    assert [s.attributes["spikeformer.success"] for s in spans] == [True, False]


def _events(caplog):
    return [(r.levelname, r.getMessage(), {k: getattr(r, k, None) for k in (
        "event_type", "framework", "operation", "model_type", "hardware_target",
        "target_hardware", "model_size", "success", "error_type", "error_message")})
        for r in caplog.records if r.name == "spikeformer.events"]


def test_conversion_events(toolchain, caplog):
    module, _, _ = toolchain
    net = Net()
    with caplog.at_level(logging.INFO, logger="spikeformer.events"):
        module.convert(net)
        with pytest.raises(KeyError):
            module.convert(net, fail=True)
    common = {"framework": "acme", "operation": "conversion", "model_type": "Net",
              "hardware_target": "speck2f", "target_hardware": None,
              "model_size": "tiny"}  # no parameters
    message = "'unsupported layer " + "x" * 600 + "'"
    assert _events(caplog) == [
        ("INFO", "spikeformer.convert acme started",
         {**common, "event_type": "conversion_start", "success": None, "error_type": None,
          "error_message": None}),
        ("INFO", "spikeformer.convert acme finished in "
         + f"{caplog.records[1].duration_s:.3f} s",
         {**common, "event_type": "conversion_end", "success": True, "error_type": None,
          "error_message": None}),
        ("INFO", "spikeformer.convert acme started",
         {**common, "event_type": "conversion_start", "success": None, "error_type": None,
          "error_message": None}),
        ("ERROR", "spikeformer.convert acme failed: KeyError",
         {**common, "event_type": "conversion_error", "success": False, "error_type": "KeyError",
          "error_message": message[:500]}),
    ]
    assert all(r.duration_s >= 0 for r in caplog.records[1::2])


def test_compilation_events(toolchain, caplog):
    module, _, _ = toolchain
    with caplog.at_level(logging.INFO, logger="spikeformer.events"):
        asyncio.run(module.Chip("xylo").compile([1]))
    common = {"framework": "acme", "operation": "compilation", "model_type": "list",
              "hardware_target": None, "target_hardware": "xylo", "model_size": None,
              "error_type": None, "error_message": None}
    assert [(level, text.split(" in ")[0], fields) for level, text, fields in _events(caplog)] == [
        ("INFO", "spikeformer.compile acme started",
         {**common, "event_type": "compilation_start", "success": None}),
        ("INFO", "spikeformer.compile acme finished",
         {**common, "event_type": "compilation_end", "success": True})]


def test_no_events_when_the_logger_is_off(toolchain, caplog, otel):
    module, _, _ = toolchain
    with caplog.at_level(logging.CRITICAL, logger="spikeformer.events"):
        module.convert(Net())
        with pytest.raises(KeyError):
            module.convert(Net(), fail=True)
    assert caplog.records == []
    assert otel.value("spikeformer.conversions", framework="acme") == 2


class FakeResource:
    """``resource`` with a scripted peak RSS (KiB, as Linux reports it)."""

    RUSAGE_SELF = 0

    def __init__(self, *kib):
        self.kib = list(kib)

    def getrusage(self, who):
        assert who == self.RUSAGE_SELF
        return types.SimpleNamespace(ru_maxrss=self.kib.pop(0))


@pytest.mark.parametrize(("kib", "growth"), [((1000, 1500), 512_000), ((2000, 1000), 0)])
def test_compilation_memory_growth_in_bytes(toolchain, otel, monkeypatch, kib, growth):
    from opentelemetry_instrumentation_spikeformer.core import telemetry

    module, _, _ = toolchain
    monkeypatch.setattr(telemetry, "resource", FakeResource(*kib))
    asyncio.run(module.Chip("xylo").compile([1]))
    (span,) = otel.spans("spikeformer.compile acme")
    assert span.attributes["spikeformer.memory.peak_growth"] == growth
    (point,) = otel.points("spike_compiler.compilation.memory_growth")
    assert (point.count, point.sum) == (1, growth)
    assert dict(point.attributes) == {"target_hardware": "xylo", "framework": "acme",
                                      "operation": "compile"}


def test_no_memory_growth_without_resource(toolchain, otel, monkeypatch):
    from opentelemetry_instrumentation_spikeformer.core import telemetry

    module, _, _ = toolchain
    monkeypatch.setattr(telemetry, "resource", None)
    asyncio.run(module.Chip("xylo").compile([1]))
    (span,) = otel.spans("spikeformer.compile acme")
    assert "spikeformer.memory.peak_growth" not in span.attributes
    assert otel.points("spike_compiler.compilation.memory_growth") == []
    assert otel.value("spike_compiler.compilations", framework="acme") == 1


COUNTER = m.MetricSpec("acme.routes", "counter", "{route}", "acme_routes_total", ("chip",),
                       "Routes placed")
GAUGE = m.MetricSpec("acme.cores_used", "observable_gauge", "{core}", "acme_cores_used",
                     ("chip",), "Cores in use")


def test_extension_instruments_are_created_once(otel):
    telemetry = _telemetry(otel)
    counter = telemetry.instrument(COUNTER)
    assert telemetry.instrument(COUNTER) is counter
    counter.add(2, {"chip": "0"})
    telemetry.instrument(COUNTER).add(3, {"chip": "0"})
    (point,) = otel.points("acme.routes")
    assert (point.value, dict(point.attributes)) == (5, {"chip": "0"})


def test_published_snapshots_replace_each_other_until_close(otel):
    telemetry = _telemetry(otel)
    telemetry.publish("mapping", {GAUGE: [(3.0, {"chip": "0"}), (1.0, {"chip": "1"})]})
    telemetry.publish("mapping", {GAUGE: [(4.0, {"chip": "0"})]})
    telemetry.publish("other", {GAUGE: [(2.0, {"chip": "9"})]})
    assert sorted((p.value, dict(p.attributes)["chip"]) for p in otel.points("acme.cores_used")) \
        == [(2.0, "9"), (4.0, "0")]
    telemetry.close()
    assert telemetry.closed is True
    assert otel.points("acme.cores_used") == []


def test_conversion_span_and_metrics(toolchain, otel):
    module, _, _ = toolchain
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())  # 16 parameters, 2 layers
    assert module.convert(net) is net
    (span,) = otel.spans("spikeformer.convert acme")
    assert dict(span.attributes) == {
        "spikeformer.framework": "acme", "spikeformer.operation": "conversion",
        "spikeformer.model.type": "Sequential", "spikeformer.model.parameters": 16,
        "spikeformer.model.size": "tiny", "spikeformer.model.layers": 2,
        "spikeformer.hardware.target": "speck2f",
        "code.function.name": f"{__name__}.convert",
        "spikeformer.success": True, "spikeformer.snn.spiking_layers": 0}
    assert span.status.status_code.name == "UNSET"
    assert span.kind.name == "INTERNAL"
    (count,) = otel.points("spikeformer.conversions")
    assert (count.value, dict(count.attributes)) == (1, {
        "model_type": "Sequential", "hardware_target": "speck2f", "framework": "acme"})
    (duration,) = otel.points("spikeformer.conversion.duration")
    assert dict(duration.attributes) == {"model_size": "tiny", "framework": "acme"}
    assert duration.count == 1 and 0 <= duration.sum < 60
    assert otel.points("spikeformer.conversion.errors") == []


def test_a_failed_export_names_the_exception_by_its_qualified_name(toolchain, otel):
    module, _, _ = toolchain
    with pytest.raises(Outer.Failure) as raised:
        module.export(Net(), timesteps=8, layer="boom")
    (span,) = otel.spans("spikeformer.export acme")
    attrs = dict(span.attributes)
    assert attrs["error.type"] == "Outer.Failure"
    assert attrs["spikeformer.success"] is False
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "Failure: layer boom"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "layer boom"
    assert raised.value.args == ("layer boom",)
    (error,) = otel.points("spike_compiler.compilation.errors")
    assert (error.value, dict(error.attributes)) == (1, {
        "model_type": "Net", "target_hardware": "nir", "framework": "acme",
        "operation": "export", "error.type": "Outer.Failure"})
    (count,) = otel.points("spike_compiler.compilations")
    assert dict(count.attributes) == {"model_type": "Net", "target_hardware": "nir",
                                      "framework": "acme", "operation": "export"}
    (duration,) = otel.points("spike_compiler.compilation.duration")
    assert dict(duration.attributes) == {"target_hardware": "nir", "framework": "acme",
                                         "operation": "export"}


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"timesteps": 8, "layer": "fc1"}, {"spikeformer.snn.timesteps": 8,
                                        "spikeformer.recipe": "rate",
                                        "spikeformer.layer.name": "fc1"}),
    ({"timesteps": "8", "recipe": 3}, {"spikeformer.snn.timesteps": "8",
                                       "spikeformer.recipe": 3}),
    ({"timesteps": True, "recipe": 2.5, "layer": ["fc1"]}, {}),  # not int/str, or a bool
])
def test_export_span_attributes_from_the_arguments(toolchain, otel, kwargs, expected):
    module, _, _ = toolchain
    module.export(Net(), **kwargs)
    (span,) = otel.spans("spikeformer.export acme")
    assert dict(span.attributes) == {
        "spikeformer.framework": "acme", "spikeformer.operation": "export",
        "spikeformer.model.type": "Net", "spikeformer.model.parameters": 0,
        "spikeformer.model.size": "tiny", "spikeformer.model.layers": 1,
        "spikeformer.hardware.target": "nir", "spikeformer.export.direction": "to_nir",
        "code.function.name": f"{__name__}.export", "spikeformer.success": True,
        "spikeformer.memory.peak_growth": span.attributes["spikeformer.memory.peak_growth"],
        **expected}


class Raising(RowHooks):
    def on_end(self, call, result, error):
        raise RuntimeError("hook bug")


def test_failures_in_our_code_are_reported_by_place(otel, caplog):
    module = _module()
    module.convert = convert
    session = PatchSession(_telemetry(otel), [
        Target(MODULE, "convert", CONVERSION, "acme", model="model", hooks=Raising())],
        packages=())
    session.telemetry.on_converted.append(lambda result, target, call: 1 / 0)
    with _running(session):
        with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
            net = Net()
            assert module.convert(net) is net
    assert [r.getMessage() for r in caplog.records] == [
        "spikeformer instrumentation error in acme end hook (the instrumented call is "
        "unaffected)",
        "spikeformer instrumentation error in post-conversion callback (the instrumented "
        "call is unaffected)"]
    assert otel.value("spikeformer.conversions", framework="acme") == 1


def test_failing_metrics_and_events_are_reported_by_place(otel, caplog, monkeypatch):
    from opentelemetry_instrumentation_spikeformer.core import telemetry

    def boom(*args):
        raise RuntimeError("broken")

    module = _module()
    module.convert = convert
    session = PatchSession(_telemetry(otel), [
        Target(MODULE, "convert", CONVERSION, "acme", model="model")], packages=())
    monkeypatch.setattr(session.telemetry, "record", boom)
    monkeypatch.setattr(telemetry, "_log_end", boom)
    monkeypatch.setattr(telemetry.Call, "_describe_end", boom)
    with _running(session):
        with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
            net = Net()
            assert module.convert(net) is net
    assert [r.getMessage() for r in caplog.records] == [
        f"spikeformer instrumentation error in {where} (the instrumented call is unaffected)"
        for where in ("metric recording", "end event", "span end")]
    (span,) = otel.spans("spikeformer.convert acme")  # ended all the same
    assert "spikeformer.success" not in span.attributes


def test_post_conversion_callbacks_get_result_row_and_call(toolchain, otel):
    module, _, session = toolchain
    seen = []
    session.telemetry.on_converted.append(
        lambda result, target, call: seen.append((result, target.qualname, call.target.qualname,
                                                  call.metric_attrs["model_type"],
                                                  call.model_class)))
    net = Net()
    module.convert(net)
    with pytest.raises(KeyError):
        module.convert(net, fail=True)  # a failed conversion calls none
    assert seen == [(net, "convert", "convert", "Net", "Net")]


class BadHandle:
    def remove(self):
        raise RuntimeError("cannot remove")


class BadHandleModel:
    def register_forward_pre_hook(self, hook, with_kwargs=False):
        return BadHandle()


def test_a_failing_hook_removal_is_reported(toolchain, otel, caplog):
    module, _, _ = toolchain
    model = BadHandleModel()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        assert module.calibrate(model, []) is model
    assert [r.getMessage() for r in caplog.records] == [
        "spikeformer instrumentation error in calibration hook removal (the instrumented call "
        "is unaffected)"]
    attrs = _calibration_span(otel)  # registered, none ran: counted as 0
    assert (attrs["spikeformer.calibration.samples"],
            attrs["spikeformer.calibration.batches"]) == (0, 0)


def test_a_failing_context_restore_is_reported(toolchain, otel, caplog, monkeypatch):
    import contextvars

    from opentelemetry import context as otel_context

    from opentelemetry_instrumentation_spikeformer.core import telemetry

    attached = []

    def attach(ctx):
        attached.append(ctx)
        if len(attached) == 2:  # ours went on; putting the parent back fails
            raise RuntimeError("cannot attach")
        return otel_context.attach(ctx)

    monkeypatch.setattr(telemetry, "otel_context", types.SimpleNamespace(
        attach=attach, get_current=otel_context.get_current))
    module, _, _ = toolchain
    net = Net()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        assert contextvars.copy_context().run(module.convert, net) is net
    assert [r.getMessage() for r in caplog.records] == [
        "spikeformer instrumentation error in context detach (the instrumented call is "
        "unaffected)"]
    assert len(otel.spans("spikeformer.convert acme")) == 1


class EndsItsSpan(RowHooks):
    def on_end(self, call, result, error):
        call.span.end()


def test_a_span_ended_by_a_hook_is_not_ended_again(otel, caplog):
    module = _module()
    module.convert = convert
    session = PatchSession(_telemetry(otel), [
        Target(MODULE, "convert", CONVERSION, "acme", model="model", hooks=EndsItsSpan())],
        packages=())
    with _running(session):
        with caplog.at_level(logging.WARNING):
            module.convert(Net())
    assert len(otel.spans("spikeformer.convert acme")) == 1
    assert caplog.records == []  # the SDK warns when a span is ended twice


def test_without_an_sdk_the_call_runs_on_non_recording_spans(caplog):
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    module = _module()
    module.convert = convert
    telemetry = Telemetry(get_tracer(NoOpTracerProvider()), get_meter(NoOpMeterProvider()),
                          load_settings(environ={}))
    session = PatchSession(telemetry, [Target(MODULE, "convert", CONVERSION, "acme",
                                              model="model")], packages=())
    with _running(session):
        with caplog.at_level(logging.WARNING):
            net = Net()
            assert module.convert(net) is net
            with pytest.raises(KeyError):
                module.convert(net, fail=True)
    assert [r for r in caplog.records if r.name != "spikeformer.events"] == []


class Board:
    def __init__(self, model, n):
        self.model, self.n = model, n

    def calibrate(self, rounds):
        return rounds

    def compile(self, target, steps, recipe=None):
        return target

    def count(self, n, model=None):
        return n


@pytest.fixture
def board_rows(otel):
    module = _module()
    module.Board, module.convert = Board, convert
    rows = [
        Target(MODULE, "Board.calibrate", framework="acme", role=CALIBRATION, root_span=True,
               samples="self.n", model="self.model"),
        Target(MODULE, "Board.count", framework="acme", role=CALIBRATION, root_span=True,
               samples="#0"),
        Target(MODULE, "Board.compile", COMPILATION, "acme", model="self.model", hardware="#0",
               timesteps="#1", recipe="#2"),
        Target(MODULE, "convert", CONVERSION, "acme", model="model"),
    ]
    session = PatchSession(_telemetry(otel), rows, packages=())
    with _running(session):
        yield module


def test_sources_read_the_object_and_positional_arguments(board_rows, otel):
    module = board_rows
    board = module.Board(object(), 12)  # a model without torch hooks: nothing counted later
    board.calibrate(3)
    (span,) = otel.spans("spikeformer.calibrate")
    assert span.attributes["spikeformer.calibration.samples"] == 12
    assert span.attributes["spikeformer.model.type"] == "object"
    otel.exporter.clear()
    board.count(7)
    (span,) = otel.spans("spikeformer.calibrate")
    assert span.attributes["spikeformer.calibration.samples"] == 7
    board.compile("Speck2f:0", 16, "ttfs")
    (span,) = otel.spans("spikeformer.compile acme")
    assert (span.attributes["spikeformer.hardware.target"],
            span.attributes["spikeformer.snn.timesteps"],
            span.attributes["spikeformer.recipe"],
            span.attributes["spikeformer.model.type"]) == ("speck2f", 16, "ttfs", "object")
    (point,) = otel.points("spike_compiler.compilations")
    assert dict(point.attributes) == {"model_type": "object", "target_hardware": "speck2f",
                                      "framework": "acme", "operation": "compile"}


def test_a_call_without_a_model(board_rows, otel):
    board_rows.convert(None)
    (span,) = otel.spans("spikeformer.convert acme")
    assert "spikeformer.model.type" not in span.attributes
    assert span.attributes["spikeformer.hardware.target"] == "none"
    (point,) = otel.points("spikeformer.conversions")
    assert dict(point.attributes) == {"model_type": "none", "hardware_target": "none",
                                      "framework": "acme"}
    (duration,) = otel.points("spikeformer.conversion.duration")
    assert dict(duration.attributes) == {"model_size": "none", "framework": "acme"}


def opaque(model=None, **kw):
    return model


opaque.__signature__ = "not a signature"  # inspect.signature raises TypeError


def strict(model, timesteps):
    return model


def stage(net):
    return net


@pytest.fixture
def loose_rows(otel):
    module = _module()
    module.opaque, module.strict, module.stage = opaque, strict, stage
    rows = [Target(MODULE, "opaque", CONVERSION, "acme", model="model", timesteps="timesteps"),
            Target(MODULE, "strict", CONVERSION, "acme", model="model", timesteps="timesteps"),
            Target(MODULE, "stage", framework="acme", role=STAGE)]
    session = PatchSession(_telemetry(otel), rows, packages=())
    with _running(session):
        yield module, session


def test_an_opaque_signature_reads_keyword_arguments(loose_rows, otel, caplog):
    module, _ = loose_rows
    net = Net()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        assert module.opaque(model=net, timesteps=4) is net
        assert module.opaque(net) is net  # positional: not readable by name
    first, second = otel.spans("spikeformer.convert acme")
    assert (first.attributes["spikeformer.model.type"],
            first.attributes["spikeformer.snn.timesteps"]) == ("Net", 4)
    assert "spikeformer.model.type" not in second.attributes
    assert caplog.records == []


def test_arguments_that_do_not_bind_still_measure_the_call(loose_rows, otel, caplog):
    module, _ = loose_rows
    net = Net()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        with pytest.raises(TypeError):
            module.strict(net, 4, 5, timesteps=8)  # too many: the function's own TypeError
    (span,) = otel.spans("spikeformer.convert acme")
    assert span.attributes["spikeformer.snn.timesteps"] == 8  # keyword arguments are read
    assert span.attributes["error.type"] == "TypeError"
    assert [r.name for r in caplog.records] == ["spikeformer.events"]  # the failure event


def test_a_step_outside_any_operation_runs_bare(loose_rows, otel):
    module, _ = loose_rows
    assert module.stage([1]) == [1]
    assert otel.spans() == []


def test_a_failing_start_is_reported_and_the_call_runs_bare(loose_rows, otel, caplog,
                                                             monkeypatch):
    def boom(*args):
        raise RuntimeError("broken")

    module, session = loose_rows
    monkeypatch.setattr(session.telemetry, "_attributes", boom)
    net = Net()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        assert module.strict(net, 4) is net
    assert [r.getMessage() for r in caplog.records] == [
        f"spikeformer instrumentation error in start of {MODULE}.strict (the instrumented "
        "call is unaffected)"]
    assert otel.spans() == []


class Runner:
    """A callable object: no ``__qualname__`` of its own."""

    def __call__(self, model):
        return model


class FailsToStart(RowHooks):
    def on_start(self, call, bound):
        raise RuntimeError("hook bug")


def build(net, inner=False):
    return sys.modules[MODULE].place(net, inner)  # through the wrapped module attribute


def place(net, inner):
    return sys.modules[MODULE].build_again(net) if inner else net


def build_again(net):
    return net


@pytest.fixture
def nested_rows(otel):
    module = _module()
    module.run, module.build, module.place, module.build_again = Runner(), build, place, \
        build_again
    rows = [Target(MODULE, "run", CONVERSION, "acme", model="model", hooks=FailsToStart()),
            Target(MODULE, "build", COMPILATION, "acme"),
            Target(MODULE, "place", framework="acme", role=STAGE),
            Target(MODULE, "build_again", COMPILATION, "acme")]
    session = PatchSession(_telemetry(otel), rows, packages=())
    with _running(session):
        yield module


def test_a_callable_object_is_named_by_its_row(nested_rows, otel, caplog):
    net = Net()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
        assert nested_rows.run(net) is net
    (span,) = otel.spans("spikeformer.convert acme")
    assert span.attributes["code.function.name"] == f"{MODULE}.run"
    # the hook failed after the span started: reported, the call measured all the same
    assert [r.getMessage() for r in caplog.records] == [
        f"spikeformer instrumentation error in start of {MODULE}.run (the instrumented call "
        "is unaffected)"]
    assert otel.value("spikeformer.conversions", framework="acme") == 1


def test_an_operation_nested_in_a_step_of_the_same_operation_counts_once(nested_rows, otel):
    net = Net()
    assert nested_rows.build(net, inner=True) is net
    names = sorted(s.name for s in otel.spans())
    assert names == ["spikeformer.compile acme", "spikeformer.compile acme",
                     "spikeformer.stage place"]
    assert otel.value("spike_compiler.compilations", framework="acme") == 1


class Stepper:
    def __call__(self, model, n_chips):
        return n_chips


class CallsBack(RowHooks):
    """Records the call's object; calls an instrumented function from our own code."""

    def __init__(self):
        self.calls = []
        self.results = []

    def on_end(self, call, result, error):
        self.calls.append((call.target.role, type(call.instance).__name__))
        self.results.append(result)
        sys.modules[MODULE].convert(Net())  # re-entered: runs bare


async def fetch(model, *, timesteps):
    return (model, timesteps)


class AsyncStepper:
    async def __call__(self, model, n_chips):
        await asyncio.sleep(0)
        return n_chips

    @classmethod
    async def load(cls, model):
        await asyncio.sleep(0)
        return ("loaded", model)


@pytest.fixture
def step_rows(otel):
    module = _module()
    module.Stepper, module.convert, module.fetch = Stepper, convert, fetch
    module.AsyncStepper = AsyncStepper
    hooks = CallsBack()
    rows = [Target(MODULE, "Stepper.__call__", framework="acme", role=STAGE, step="allocate",
                   standalone=COMPILATION, model="model", hooks=hooks),
            Target(MODULE, "convert", CONVERSION, "acme", model="model"),
            Target(MODULE, "fetch", CONVERSION, "acme", model="model", timesteps="timesteps"),
            Target(MODULE, "AsyncStepper.__call__", framework="acme", role=STAGE, step="place",
                   standalone=COMPILATION, model="model", hooks=hooks),
            Target(MODULE, "AsyncStepper.load", CONVERSION, "acme", model="model",
                   hooks=hooks)]
    session = PatchSession(_telemetry(otel), rows, packages=())
    with _running(session):
        yield module, hooks


def test_a_step_alone_measures_its_operation_with_the_call(step_rows, otel):
    module, hooks = step_rows
    stepper = module.Stepper()
    assert stepper([1, 2], 3) == 3
    outer, = otel.spans("spikeformer.compile acme")
    step, = otel.spans("spikeformer.stage allocate")
    assert outer.attributes["code.function.name"] == f"{__name__}.Stepper.__call__"
    assert outer.attributes["spikeformer.model.type"] == "list"  # read from the positional model
    assert step.attributes["spikeformer.model.type"] == "list"
    assert hooks.calls == [("stage", "Stepper"), ("op", "Stepper")]
    # the hooks' own calls of an instrumented function ran bare: no conversion span or count
    assert otel.spans("spikeformer.convert acme") == []
    assert otel.value("spikeformer.conversions", framework="acme") == 0


def test_suppressed_instrumentation_runs_async_calls_bare_with_their_arguments(step_rows, otel):
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    module, _ = step_rows
    with suppress_instrumentation():
        assert asyncio.run(module.fetch([1], timesteps=4)) == ([1], 4)
    assert otel.spans() == []
    assert asyncio.run(module.fetch([1], timesteps=4)) == ([1], 4)
    (span,) = otel.spans("spikeformer.convert acme")
    assert span.attributes["spikeformer.snn.timesteps"] == 4


def test_an_async_step_alone_measures_its_operation_around_the_await(step_rows, otel):
    module, hooks = step_rows
    assert asyncio.run(module.AsyncStepper()([1, 2], n_chips=3)) == 3
    outer, = otel.spans("spikeformer.compile acme")
    step, = otel.spans("spikeformer.stage place")
    assert step.parent.span_id == outer.context.span_id
    assert outer.attributes["code.function.name"] == f"{__name__}.AsyncStepper.__call__"
    assert outer.attributes["spikeformer.model.type"] == "list"
    assert hooks.calls == [("stage", "AsyncStepper"), ("op", "AsyncStepper")]
    assert otel.value("spike_compiler.compilations", framework="acme") == 1


def test_an_async_classmethod_is_awaited_inside_its_span(step_rows, otel):
    module, hooks = step_rows
    assert asyncio.run(module.AsyncStepper.load([1])) == ("loaded", [1])
    (span,) = otel.spans("spikeformer.convert acme")
    assert span.attributes["spikeformer.model.type"] == "list"
    assert span.attributes["spikeformer.success"] is True
    assert hooks.calls == [("op", "type")]  # the class is the call's object
    assert hooks.results == [("loaded", [1])]  # awaited inside the span, not a coroutine


def test_a_method_descriptor_is_named_by_its_row(otel):
    module = _module()
    module.upper = str.upper  # a C method: no __module__ at all
    session = PatchSession(_telemetry(otel), [Target(MODULE, "upper", COMPILATION, "acme")],
                           packages=())
    with _running(session):
        assert module.upper("ab") == "AB"
    (span,) = otel.spans("spikeformer.compile acme")
    assert span.attributes["code.function.name"] == f"{MODULE}.upper"


def test_only_counted_calls_log_events(nested_rows, caplog):
    with caplog.at_level(logging.INFO, logger="spikeformer.events"):
        nested_rows.build(Net(), inner=True)  # a step and a nested compile inside it
    assert [r.event_type for r in caplog.records if r.name == "spikeformer.events"] == [
        "compilation_start", "compilation_end"]


class EndlessSpan(trace.NonRecordingSpan):
    def end(self, end_time=None):
        raise RuntimeError("cannot end")


class EndlessTracer:
    def start_span(self, name, kind=None, attributes=None):
        return EndlessSpan(trace.INVALID_SPAN_CONTEXT)


def test_a_span_that_cannot_end_is_reported(caplog):
    module = _module()
    module.convert = convert
    from opentelemetry.metrics import NoOpMeterProvider

    telemetry = Telemetry(EndlessTracer(), get_meter(NoOpMeterProvider()),
                          load_settings(environ={}))
    session = PatchSession(telemetry, [Target(MODULE, "convert", CONVERSION, "acme")],
                           packages=())
    with _running(session):
        with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_spikeformer"):
            net = Net()
            assert module.convert(net) is net
    assert [r.getMessage() for r in caplog.records] == [
        "spikeformer instrumentation error in span end (the instrumented call is unaffected)"]


def test_active_conversions_stop_reporting_when_the_session_closes(loose_rows, otel):
    module, session = loose_rows
    module.strict(Net(), 4)
    (point,) = otel.points("spikeformer.active_conversions")
    assert (point.value, dict(point.attributes)) == (0, {"framework": "acme"})
    session.telemetry.close()
    assert otel.points("spikeformer.active_conversions") == []


def test_model_types_are_bounded_per_meter(otel):
    from opentelemetry.sdk.metrics import MeterProvider

    settings = load_settings({"max_models": 1}, environ={})
    first = Telemetry(get_tracer(otel.tracer_provider), get_meter(otel.meter_provider), settings)
    other_provider = MeterProvider()
    second = Telemetry(get_tracer(otel.tracer_provider), get_meter(other_provider), settings)
    assert first.model_types("Net", 1) == "Net"
    assert first.model_types("Sequential", 1) == "other"  # past max_models on this meter
    assert second.model_types("Sequential", 1) == "Sequential"  # another meter's own bound
    other_provider.shutdown()


def test_the_missing_sdk_warning_is_for_global_providers_only(otel, monkeypatch):
    import warnings

    from opentelemetry_instrumentation_spikeformer.core import scope

    module = _module()
    module.convert = convert
    row = [Target(MODULE, "convert", CONVERSION, "acme")]
    # whatever another test made of the global providers: none set
    monkeypatch.setattr(scope, "is_noop_provider", lambda provider: True)
    try:
        for global_providers, expected in ((False, []), (True, [scope.NO_SDK_MESSAGE])):
            monkeypatch.setattr(scope, "_warned_no_sdk", False)
            if global_providers:
                telemetry = Telemetry(get_tracer(otel.tracer_provider),
                                      get_meter(otel.meter_provider),
                                      load_settings(environ={}), global_providers=True)
            else:  # the default
                telemetry = Telemetry(get_tracer(otel.tracer_provider),
                                      get_meter(otel.meter_provider), load_settings(environ={}))
            session = PatchSession(telemetry, row, packages=())
            session.start()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                module.convert(Net())
            session.stop()
            assert [str(w.message) for w in caught
                    if issubclass(w.category, scope.TelemetryNotConfiguredWarning)] == expected
    finally:
        del sys.modules[MODULE]
