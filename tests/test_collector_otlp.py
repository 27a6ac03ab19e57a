"""OTLP push, as the collector receives it: the workload under
``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=otlp`` and
``OTEL_METRICS_EXPORTER=otlp`` exports to a real OTLP receiver (rotel, debug
logging on), over gRPC and over HTTP; we assert our spans, their attributes and
our metrics from what rotel printed."""

from __future__ import annotations

import pytest

from collector_support import (
    Process, Span, free_port, parse_metric_names, parse_spans, rotel_agent, run, wait_until,
    workload_command, workload_env,
)

pytestmark = [pytest.mark.subprocess, pytest.mark.servers, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"])
def received(request, tmp_path_factory) -> str:
    """rotel's output after one workload run exporting with this protocol."""
    tmp = tmp_path_factory.mktemp("otlp")
    grpc_port, http_port = free_port(), free_port()
    rotel = Process(
        [str(rotel_agent()), "start",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         "--exporter", "blackhole",
         "--debug-log", "traces", "--debug-log", "metrics",
         "--debug-log-verbosity", "detailed",
         "--pid-file", str(tmp / "rotel.pid")],
        tmp / "rotel.log", env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    try:
        wait_until(lambda: "Starting Rotel" in rotel.output() or not rotel.alive(),
                   timeout=20, what="rotel to start")
        assert rotel.alive(), rotel.output()
        port = grpc_port if request.param == "grpc" else http_port
        result = run(workload_command("--wait", "none"), timeout=180,
                     env=workload_env(
                         OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp",
                         OTEL_EXPORTER_OTLP_PROTOCOL=request.param,
                         OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                         OTEL_METRIC_EXPORT_INTERVAL="60000"))
        assert result.returncode == 0, result.stdout + result.stderr
        # The SDK flushed at exit; rotel prints what it received as it arrives.
        wait_until(lambda: "spikeformer.conversions" in rotel.output(), timeout=20,
                   what=f"our metrics at rotel\n{rotel.output()[-3000:]}\n{result.stderr[-2000:]}")
        return rotel.output()
    finally:
        rotel.stop()


def spans_named(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s.name == name]


def test_conversion_spans_arrive_with_their_attributes(received):
    spans = parse_spans(received)
    sinabs = spans_named(spans, "spikeformer.convert sinabs")
    assert len(sinabs) == 2, [s.name for s in spans]  # one success, one forced failure
    ok = next(s for s in sinabs if s.attributes.get("spikeformer.success") == "true")
    assert ok.attributes["spikeformer.model.type"] == "Sequential"
    assert ok.attributes["spikeformer.framework"] == "sinabs"
    assert ok.attributes["spikeformer.operation"] == "conversion"
    assert ok.attributes["spikeformer.hardware.target"] == "none"
    assert int(ok.attributes["spikeformer.model.parameters"]) > 0
    assert int(ok.attributes["spikeformer.snn.spiking_layers"]) == 3
    failed = next(s for s in sinabs if s.attributes.get("spikeformer.success") == "false")
    assert failed.status == "STATUS_CODE_ERROR"
    assert failed.attributes["error.type"] == "TypeError"

    sj = spans_named(spans, "spikeformer.convert spikingjelly")
    assert len(sj) == 1 and sj[0].attributes["spikeformer.recipe"] == "RateCodingRecipe"
    assert spans_named(spans, "spikeformer.calibrate")
    assert spans_named(spans, "spikeformer.stage replace")


def test_compile_spans_arrive_with_their_attributes(received):
    exports = spans_named(parse_spans(received), "spikeformer.export sinabs")
    assert len(exports) == 2
    for span in exports:
        assert span.attributes["spikeformer.hardware.target"] == "nir"
        assert span.attributes["spikeformer.export.direction"] == "to_nir"
        assert span.attributes["spikeformer.operation"] == "export"
    assert sorted(s.attributes["spikeformer.success"] for s in exports) == ["false", "true"]
    failed = next(s for s in exports if s.attributes["spikeformer.success"] == "false")
    assert failed.status == "STATUS_CODE_ERROR"
    assert failed.attributes["error.type"] == "RuntimeError"


def test_core_metrics_arrive(received):
    names = parse_metric_names(received)
    for name in ("spikeformer.conversions", "spikeformer.conversion.errors",
                 "spikeformer.conversion.duration", "spikeformer.active_conversions",
                 "spike_compiler.compilations", "spike_compiler.compilation.errors",
                 "spike_compiler.compilation.duration"):
        assert name in names, sorted(names)


def test_resource_identifies_the_service(received):
    assert "-> service.name: Str(spikeformer-workload)" in received


def test_parser_reads_rotel_output():
    sample = """ResourceSpans #0
Span #0
    Trace ID       : c73a
    Name           : spikeformer.convert sinabs
    Status code    : STATUS_CODE_ERROR
Attributes:
     -> spikeformer.model.type: Str(Sequential)
     -> spikeformer.model.parameters: Int(42)
ResourceMetrics #0
Metric #0
Descriptor:
     -> Name: spikeformer.conversions
"""
    (span,) = parse_spans(sample)
    assert span == Span("spikeformer.convert sinabs", "STATUS_CODE_ERROR",
                        {"spikeformer.model.type": "Sequential",
                         "spikeformer.model.parameters": "42"})
    assert parse_metric_names(sample) == {"spikeformer.conversions"}
