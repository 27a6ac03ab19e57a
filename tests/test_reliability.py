"""Telemetry never breaks the user's program: same return object, same exception
object, even when our code, the SDK or an exporter fails; gauges stay balanced."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracerProvider

import pipeline_kit
from models import INPUT_SHAPE, tiny_cnn
from opentelemetry_instrumentation_spikeformer.core.telemetry import _CURRENT_OP


class _Boom(Exception):
    pass


class RaisingTracerProvider(NoOpTracerProvider):
    """start_span raises."""

    def get_tracer(self, *args, **kwargs):
        tracer = super().get_tracer(*args, **kwargs)

        def start_span(*a, **k):
            raise _Boom("tracer down")

        tracer.start_span = start_span
        return tracer


class RaisingSpanTracerProvider(TracerProvider):
    """Spans whose attribute setters, status and end raise."""

    def get_tracer(self, *args, **kwargs):
        tracer = super().get_tracer(*args, **kwargs)
        real = tracer.start_span

        def start_span(*a, **k):
            span = real(*a, **k)
            for name in ("set_attribute", "set_status", "record_exception", "end"):
                setattr(span, name, lambda *x, **y: (_ for _ in ()).throw(_Boom(name)))
            return span

        tracer.start_span = start_span
        return tracer


class RaisingMeterProvider:
    """Instruments whose add/record raise."""

    def get_meter(self, *args, **kwargs):
        class Instrument:
            def add(self, *a, **k):
                raise _Boom("meter down")

            record = add

        class Meter:
            def __getattr__(self, name):
                return lambda *a, **k: Instrument()

        return Meter()


class BrokenMeterProvider:
    def get_meter(self, *args, **kwargs):
        raise _Boom("no meter")


class RaisingExporter(SpanExporter):
    def export(self, spans):
        raise _Boom("exporter down")


def _providers(kind):
    from opentelemetry.sdk.metrics import MeterProvider

    if kind == "tracer":
        return RaisingTracerProvider(), MeterProvider()
    if kind == "span":
        return RaisingSpanTracerProvider(), MeterProvider()
    if kind == "meter":
        return TracerProvider(), RaisingMeterProvider()
    if kind == "no-meter":
        return TracerProvider(), BrokenMeterProvider()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(RaisingExporter()))
    return tp, MeterProvider()


KINDS = ["tracer", "span", "meter", "no-meter", "exporter"]


@pytest.fixture(params=KINDS)
def broken(request):
    """Instrumented with a tracer, span, meter or exporter that raises."""
    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

    tp, mp = _providers(request.param)
    inst = SpikeformerInstrumentor()
    inst.instrument(tracer_provider=tp, meter_provider=mp,
                    extra_targets=pipeline_kit.EXTRA_TARGETS)
    yield
    inst.uninstrument()


def test_same_return_object_when_telemetry_fails(broken):
    assert pipeline_kit.convert(object()) is pipeline_kit.RESULT
    import sinabs

    net = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert type(net).__name__ == "Network"
    # nothing of ours is left attached to the caller's context
    assert not trace.get_current_span().get_span_context().is_valid
    assert _CURRENT_OP.get() is None


def test_same_exception_object_when_telemetry_fails(broken):
    with pytest.raises(RuntimeError) as excinfo:
        pipeline_kit.compile_model(object())
    assert excinfo.value is pipeline_kit.FAILURE


def test_same_objects_from_an_async_target_when_telemetry_fails(broken):
    assert asyncio.run(pipeline_kit.deploy(object())) is pipeline_kit.RESULT
    with pytest.raises(RuntimeError) as excinfo:
        asyncio.run(pipeline_kit.deploy(object(), fail=True))
    assert excinfo.value is pipeline_kit.FAILURE
    assert _CURRENT_OP.get() is None


def test_async_target_same_objects_and_a_span_around_the_await(instrument, otel):
    instrument(extra_targets=pipeline_kit.EXTRA_TARGETS)
    assert asyncio.iscoroutinefunction(pipeline_kit.deploy)  # still awaitable as such
    pipeline_kit.SEEN_IN_DEPLOY.clear()
    assert asyncio.run(pipeline_kit.deploy(object(), "xylo", wait=0.05)) is pipeline_kit.RESULT
    with pytest.raises(RuntimeError) as excinfo:
        asyncio.run(pipeline_kit.deploy(object(), "loihi2", fail=True))
    assert excinfo.value is pipeline_kit.FAILURE
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None

    ok, failed = otel.spans("spikeformer.deploy pipeline_kit")
    assert [s.context for s in (ok, failed)] == pipeline_kit.SEEN_IN_DEPLOY
    assert ok.end_time - ok.start_time >= 50_000_000  # ns: the span lasted the await
    assert ok.attributes["spikeformer.operation"] == "deployment"
    assert ok.attributes["spikeformer.hardware.target"] == "xylo"
    assert ok.attributes["spikeformer.success"] is True
    assert ok.status.status_code.name == "UNSET"
    assert failed.attributes["spikeformer.success"] is False
    assert failed.attributes["error.type"] == "RuntimeError"
    assert failed.status.status_code.name == "ERROR"
    assert failed.status.description == "RuntimeError: compile failed on purpose"
    assert otel.value("spike_compiler.compilations", operation="deploy", framework="pipeline_kit",
                      target_hardware="xylo") == 1
    assert otel.value("spike_compiler.compilation.errors", operation="deploy",
                      target_hardware="loihi2", **{"error.type": "RuntimeError"}) == 1
    assert _CURRENT_OP.get() is None
    assert not trace.get_current_span().get_span_context().is_valid


def test_async_target_is_left_bare_when_suppressed_or_uninstrumented(instrument, otel):
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    inst = instrument(extra_targets=pipeline_kit.EXTRA_TARGETS)
    with suppress_instrumentation():
        assert asyncio.run(pipeline_kit.deploy(object())) is pipeline_kit.RESULT
    kept = pipeline_kit.deploy
    inst.uninstrument()
    assert asyncio.run(kept(object())) is pipeline_kit.RESULT
    assert otel.spans() == []


def test_same_objects_with_working_telemetry(instrument, otel):
    instrument(extra_targets=pipeline_kit.EXTRA_TARGETS)
    assert pipeline_kit.convert(object()) is pipeline_kit.RESULT
    with pytest.raises(RuntimeError) as excinfo:
        pipeline_kit.compile_model(object(), target="speck2fdevkit:0")
    assert excinfo.value is pipeline_kit.FAILURE
    with pytest.raises(KeyboardInterrupt) as interrupted:
        pipeline_kit.interrupt(object())
    assert str(interrupted.value) == "stop"
    names = sorted(s.name for s in otel.spans())
    assert names == ["spikeformer.compile pipeline_kit", "spikeformer.convert pipeline_kit",
                     "spikeformer.convert pipeline_kit"]
    assert otel.value("spike_compiler.compilation.errors", target_hardware="speck2fdevkit",
                      **{"error.type": "RuntimeError"}) == 1
    assert otel.value("spikeformer.conversion.errors", **{"error.type": "KeyboardInterrupt"}) == 1
    assert otel.value("spikeformer.active_conversions") == 0


def test_eight_threads_converting_leave_active_conversions_at_zero(instrument, otel):
    import sinabs

    instrument()
    barrier = threading.Barrier(8)
    errors = []

    def work():
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert otel.value("spikeformer.active_conversions", framework="sinabs") == 0
    assert otel.value("spikeformer.conversions", framework="sinabs") == 24
    spans = otel.spans("spikeformer.convert sinabs")
    assert len(spans) == 24
    assert all(s.parent is None for s in spans)  # no cross-thread context leaks
    assert len({s.context.trace_id for s in spans}) == 24


def test_active_conversions_counts_the_calls_in_flight(instrument, otel):
    """Five threads held inside a conversion: the gauge reads 5, then 0."""
    instrument(extra_targets=pipeline_kit.EXTRA_TARGETS)
    inside, release = threading.Barrier(6), threading.Event()

    def held(model, target):
        inside.wait(timeout=30)
        release.wait(timeout=30)
        return pipeline_kit.RESULT

    results = []
    threads = [threading.Thread(target=lambda: results.append(pipeline_kit.convert(held)))
               for _ in range(5)]
    for t in threads:
        t.start()
    inside.wait(timeout=30)
    try:
        assert otel.value("spikeformer.active_conversions", framework="pipeline_kit") == 5
    finally:
        release.set()
        for t in threads:
            t.join(timeout=30)
    assert results == [pipeline_kit.RESULT] * 5
    assert otel.value("spikeformer.active_conversions", framework="pipeline_kit") == 0
