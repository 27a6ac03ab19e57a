"""setup_logging, the formatters, the log-record counter, the OTel logs bridge
and the events of real instrumented conversions, in-process."""

from __future__ import annotations

import inspect
import io
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from opentelemetry_instrumentation_spikeformer import structured_logging
from opentelemetry_instrumentation_spikeformer.core import attributes
from opentelemetry_instrumentation_spikeformer.structured_logging import (
    NeuromorphicLogger,
    setup_logging,
    teardown_logging,
)

NAME = "spikeformer.test.structured"


def _here() -> int:
    return inspect.currentframe().f_back.f_lineno


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def configure():
    """setup_logging on fresh StringIO streams; every logger touched is torn down."""
    touched = []

    def apply(logger=NAME, **kwargs):
        stream = io.StringIO()
        kwargs.setdefault("otel_bridge", False)
        touched.append(setup_logging(logger=logger, stream=stream, **kwargs))
        return stream

    yield apply
    for logger in touched:
        teardown_logging(logger)


@pytest.fixture
def otel_logs():
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_json_line_fields_and_extra(configure):
    out = configure()
    before = datetime.now(timezone.utc)
    line = _here() + 1
    logging.getLogger(NAME).info("loaded %s", "model", extra={
        "model_id": "m-1", "hardware_type": "loihi2", "optimization_level": 3,
        "shape": object(), "line": "a colliding key"})
    (entry,) = _lines(out)
    stamp = datetime.fromisoformat(entry["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc)
    assert entry["level"] == "INFO" and entry["logger"] == NAME
    assert entry["message"] == "loaded model"
    assert entry["module"] == "test_structured_logging"
    assert entry["function"] == "test_json_line_fields_and_extra"
    assert entry["line"] == line
    assert entry["model_id"] == "m-1" and entry["hardware_type"] == "loihi2"
    assert entry["optimization_level"] == 3
    assert entry["shape"].startswith("<object object at")  # not JSON-serialisable: str
    assert entry["extra_line"] == "a colliding key"
    assert "trace_id" not in entry and "span_id" not in entry


def test_trace_and_span_ids_of_the_current_span_only(configure, otel):
    out = configure()
    log = logging.getLogger(NAME)
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("outer"):
        with tracer.start_as_current_span("inner") as span:
            log.warning("inside")
    log.warning("outside")
    inside, outside = _lines(out)
    ctx = span.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert len(inside["trace_id"]) == 32 and inside["trace_id"] == inside["trace_id"].lower()
    assert "trace_id" not in outside and "span_id" not in outside


def test_exception_is_a_string(configure):
    out = configure()
    try:
        raise KeyError("missing-layer")
    except KeyError:
        logging.getLogger(NAME).exception("conversion step failed")
    (entry,) = _lines(out)
    assert entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback") and "KeyError: 'missing-layer'" in entry[
        "exception"]


def test_text_format_shows_fields_and_trace_id(configure, otel):
    out = configure(format="text")
    with otel.tracer_provider.get_tracer("t").start_as_current_span("s") as span:
        logging.getLogger(NAME).error("device lost", extra={"hardware_type": "speck2f"})
    text = out.getvalue()
    assert " ERROR " in text and f"{NAME}: device lost" in text
    assert "hardware_type=speck2f" in text
    assert f"trace_id={span.get_span_context().trace_id:032x}" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_setup_is_idempotent_and_teardown_restores(configure):
    log = logging.getLogger(NAME)
    log.setLevel(logging.WARNING)
    own = logging.StreamHandler(io.StringIO())
    log.addHandler(own)
    try:
        configure(level="DEBUG")
        configure(level=logging.DEBUG)
        out = configure(level=logging.DEBUG)
        assert len(log.handlers) == 3  # the user's, our console and our counter
        log.debug("once")
        assert [e["message"] for e in _lines(out)] == ["once"]
        teardown_logging(NAME)
        assert log.handlers == [own] and log.level == logging.WARNING
    finally:
        log.removeHandler(own)
        log.setLevel(logging.NOTSET)


def test_bad_arguments_raise_before_touching_the_logger():
    log = logging.getLogger(NAME)
    with pytest.raises(ValueError, match="format"):
        setup_logging(format="xml", logger=log)
    with pytest.raises(ValueError, match="level"):
        setup_logging(level="LOUD", logger=log)
    assert log.handlers == []


def test_include_metrics_counts_records_by_level_and_event_type(configure, otel):
    configure(level=logging.INFO, meter_provider=otel.meter_provider)
    log = logging.getLogger(NAME)
    log.info("converted", extra={"event_type": "conversion_end"})
    log.info("converted", extra={"event_type": "conversion_end"})
    log.warning("no event type")
    log.info("custom", extra={"event_type": "my_own_event"})
    log.debug("below the level", extra={"event_type": "conversion_end"})
    NeuromorphicLogger(log).log_hardware_error("loihi2", TimeoutError("probe timed out"))

    metric = structured_logging.LOG_RECORDS.name
    assert otel.value(metric, level="INFO", event_type="conversion_end") == 2
    assert otel.value(metric, level="WARNING", event_type="none") == 1
    assert otel.value(metric, level="INFO", event_type="other") == 1
    assert otel.value(metric, level="ERROR", event_type="hardware_error") == 1
    assert otel.value(metric) == 5
    assert {tuple(sorted(p.attributes)) for p in otel.points(metric)} == {
        ("event_type", "level")}


def test_without_include_metrics_nothing_is_counted(configure, otel):
    configure(include_metrics=False, meter_provider=otel.meter_provider)
    logging.getLogger(NAME).warning("x", extra={"event_type": "hardware_error"})
    assert otel.points(structured_logging.LOG_RECORDS.name) == []


def test_otel_bridge_sends_the_same_records_with_extra_and_trace_context(
        configure, otel, otel_logs):
    provider, exporter = otel_logs
    out = configure(otel_bridge=True, logger_provider=provider)
    with otel.tracer_provider.get_tracer("t").start_as_current_span("s") as span:
        logging.getLogger(NAME).info("converted", extra={
            "event_type": "conversion_end", "framework": "sinabs", "duration_s": 0.5})
    (exported,) = exporter.get_finished_logs()
    record = exported.log_record
    assert record.body == "converted" and record.severity_text == "INFO"
    assert record.attributes["event_type"] == "conversion_end"
    assert record.attributes["framework"] == "sinabs"
    assert record.attributes["duration_s"] == 0.5
    ctx = span.get_span_context()
    assert (record.trace_id, record.span_id) == (ctx.trace_id, ctx.span_id)
    assert exported.instrumentation_scope.name == NAME
    (line,) = _lines(out)  # and the console still gets it
    assert line["trace_id"] == format(ctx.trace_id, "032x")


def test_bridge_for_an_explicit_provider_is_instrumentation_loggings_handler(configure,
                                                                            otel_logs):
    from opentelemetry.instrumentation.logging.handler import LoggingHandler as Bridge

    provider, exporter = otel_logs
    configure(otel_bridge=True, logger_provider=provider)
    bridges = [h for h in logging.getLogger(NAME).handlers if isinstance(h, Bridge)]
    assert len(bridges) == 1
    logging.getLogger(NAME).warning("once")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["once"]
    configure(otel_bridge=True, logger_provider=provider)  # again: replaced, not added
    assert len([h for h in logging.getLogger(NAME).handlers if isinstance(h, Bridge)]) == 1


def test_bridge_without_provider_instruments_logging_and_teardown_undoes_it(otel_logs):
    """No explicit provider: opentelemetry-instrumentation-logging's instrumentor
    puts its handler on the root logger (the global provider); teardown removes it."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.logging.handler import LoggingHandler as Bridge

    root = logging.getLogger()
    assert not LoggingInstrumentor().is_instrumented_by_opentelemetry
    before = list(root.handlers)
    setup_logging(format="none", include_metrics=False, otel_bridge=True)
    try:
        assert LoggingInstrumentor().is_instrumented_by_opentelemetry
        added = [h for h in root.handlers if h not in before]
        assert [type(h) for h in added] == [Bridge]
    finally:
        teardown_logging()
    assert not LoggingInstrumentor().is_instrumented_by_opentelemetry
    assert root.handlers == before


def test_bridge_off_attaches_nothing(configure, otel_logs):
    provider, exporter = otel_logs
    configure(otel_bridge=False, logger_provider=provider)
    logging.getLogger(NAME).warning("not exported")
    assert exporter.get_finished_logs() == ()


def test_neuromorphic_logger_events_and_caller_location(configure):
    out = configure(logger=attributes.EVENTS_LOGGER, level=logging.DEBUG)
    events = NeuromorphicLogger()
    line = _here() + 1
    events.log_conversion_start({"id": "spk-1", "type": "Spikeformer", "parameter_count": 2_500_000},
                                "Loihi2:0")
    events.log_conversion_end({"id": "spk-1"}, "speck2fdevkit", duration_s=1.5,
                              error=ValueError("bad threshold"))
    events.log_spike_activity("encoder.0", 120, 8)
    start, error, spikes = _lines(out)
    assert start["logger"] == attributes.EVENTS_LOGGER
    assert (start["function"], start["line"]) == (
        "test_neuromorphic_logger_events_and_caller_location", line)
    assert start["event_type"] == "conversion_start" and start["model_id"] == "spk-1"
    assert start["model_type"] == "Spikeformer" and start["model_size"] == "medium"
    assert start["model_parameters"] == 2_500_000 and start["hardware_target"] == "loihi2"
    assert error["level"] == "ERROR" and error["event_type"] == "conversion_error"
    assert error["error_type"] == "ValueError" and error["error_message"] == "bad threshold"
    assert error["success"] is False and error["duration_s"] == 1.5
    assert spikes["level"] == "DEBUG" and spikes["spike_rate"] == 15.0


def _events(out: io.StringIO) -> list[dict]:
    return [e for e in _lines(out) if e["logger"] == attributes.EVENTS_LOGGER]


def test_instrumented_sinabs_conversion_logs_start_and_end_in_its_span(
        configure, instrument, otel):
    import sinabs
    from models import INPUT_SHAPE, tiny_cnn

    instrument()
    out = configure(logger=attributes.EVENTS_LOGGER, meter_provider=otel.meter_provider)
    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)

    start, end = _events(out)
    (span,) = otel.spans("spikeformer.convert sinabs")
    ids = {"trace_id": format(span.context.trace_id, "032x"),
           "span_id": format(span.context.span_id, "016x")}
    for entry in (start, end):
        assert {k: entry[k] for k in ids} == ids
        assert entry["framework"] == "sinabs" and entry["operation"] == "conversion"
        assert entry["model_type"] == "Sequential" and entry["model_size"] == "tiny"
        assert entry["hardware_target"] == "none" and entry["level"] == "INFO"
    assert start["event_type"] == "conversion_start"
    assert end["event_type"] == "conversion_end"
    assert end["success"] is True and 0 < end["duration_s"] < 60
    assert otel.value(structured_logging.LOG_RECORDS.name, event_type="conversion_end") == 1


def test_failing_sinabs_conversion_logs_an_error_event(configure, instrument, otel):
    import sinabs
    from models import tiny_cnn

    instrument()
    out = configure(logger=attributes.EVENTS_LOGGER, meter_provider=otel.meter_provider)
    with pytest.raises(RuntimeError, match="channels"):
        sinabs.from_model(tiny_cnn(), input_shape=(3, 14, 14), batch_size=1)  # wants 2

    start, error = _events(out)
    (span,) = otel.spans("spikeformer.convert sinabs")
    assert start["event_type"] == "conversion_start"
    assert error["event_type"] == "conversion_error" and error["level"] == "ERROR"
    assert error["error_type"] == "RuntimeError" and "channels" in error["error_message"]
    assert error["success"] is False
    assert error["trace_id"] == format(span.context.trace_id, "032x")
    assert otel.value(structured_logging.LOG_RECORDS.name, level="ERROR",
                      event_type="conversion_error") == 1


def test_nir_export_event_names_its_operation(configure, instrument):
    import sinabs
    import torch
    from models import INPUT_SHAPE, nir_cnn

    instrument()
    snn = sinabs.from_model(nir_cnn(), input_shape=INPUT_SHAPE, batch_size=1).spiking_model
    out = configure(logger=attributes.EVENTS_LOGGER)
    sinabs.to_nir(snn, torch.rand(1, *INPUT_SHAPE))
    start, end = _events(out)
    assert (start["event_type"], end["event_type"]) == ("compilation_start", "compilation_end")
    assert end["operation"] == "export" and end["target_hardware"] == "nir"


def test_compile_event_names_the_operation_like_the_span(configure, instrument, otel,
                                                        tmp_path, monkeypatch):
    """Not the metrics' short label ("compile") that the event used to carry."""
    import shutil
    import sys
    from pathlib import Path

    import torch
    shutil.copytree(Path(__file__).parent / "kits" / "spike_transformer_compiler",
                    tmp_path / "spike_transformer_compiler")
    monkeypatch.syspath_prepend(str(tmp_path))
    instrument()
    try:
        import spike_transformer_compiler

        out = configure(logger=attributes.EVENTS_LOGGER)
        spike_transformer_compiler.SpikeCompiler(target="loihi3").compile(
            torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()), (1, 4))
    finally:
        for name in [m for m in sys.modules if m.startswith("spike_transformer_compiler")]:
            del sys.modules[name]
    end = _events(out)[-1]
    (span,) = otel.spans("spikeformer.compile spike_transformer_compiler")
    assert end["event_type"] == "compilation_end"
    assert end["operation"] == span.attributes["spikeformer.operation"] == "compilation"
    assert end["target_hardware"] == "loihi3"


def test_instrumentor_leaves_logging_alone_and_setup_logging_reads_the_env(
        instrument, monkeypatch, capsys):
    import sinabs
    from models import INPUT_SHAPE, tiny_cnn

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_LOG_FORMAT", "json")
    monkeypatch.setenv("OTEL_PYTHON_SPIKEFORMER_LOG_LEVEL", "info")
    instrument()
    assert (root.level, root.handlers) == (level, handlers)  # the instrumentor only patches
    sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    assert capsys.readouterr().err == ""  # nothing configured: nothing printed
    setup_logging(include_metrics=False, otel_bridge=False)  # format and level from the env
    try:
        assert root.level == logging.INFO
        sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()
                 if x.startswith("{")]
        assert [e["event_type"] for e in lines if e["logger"] == attributes.EVENTS_LOGGER] == [
            "conversion_start", "conversion_end"]
    finally:
        teardown_logging()
    assert (root.level, root.handlers) == (level, handlers)
