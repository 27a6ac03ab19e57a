"""SDK providers for the ``spikeformer-otel`` commands that produce telemetry
(``demo``, ``bench``): an in-memory copy for what the command prints, plus a
Prometheus endpoint and/or OTLP push when asked. One place, so the commands
export the same way and take the same flags.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

DEFAULT_OTLP = "http://localhost:4317"


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host``/``--port`` (Prometheus endpoint) and ``--otlp [ENDPOINT]``."""
    parser.add_argument("--host", default="localhost",
                        help="bind address of the Prometheus endpoint (default localhost)")
    parser.add_argument("--port", type=int, default=9464,
                        help="port of the Prometheus endpoint (default 9464)")
    parser.add_argument("--otlp", nargs="?", const=DEFAULT_OTLP, default=None,
                        metavar="ENDPOINT", help="also send traces and metrics over OTLP/gRPC "
                                                 f"(default endpoint {DEFAULT_OTLP})")


@dataclass
class Providers:
    tracer_provider: Any
    meter_provider: Any
    spans: Any  # InMemorySpanExporter: every finished span
    summary: Any  # InMemoryMetricReader: what the command prints
    prometheus_url: str | None = None
    readers: list = field(default_factory=list)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def build_providers(service_name: str, *, prometheus: tuple[str, int] | None = None,
                    otlp: str | None = None, otlp_interval_s: float = 5.0,
                    readers: tuple = ()) -> Providers:
    """Tracer and meter providers; ``prometheus=(host, port)`` starts the /metrics
    server, ``otlp`` adds a batch span processor and a periodic metric reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        InMemoryMetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource.create({"service.name": service_name})
    spans = InMemorySpanExporter()
    summary = InMemoryMetricReader()
    all_readers = [summary, *readers]
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    url = None
    if prometheus is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        host, port = prometheus
        start_http_server(port, addr=host)
        all_readers.append(PrometheusMetricReader())
        url = f"http://{host}:{port}/metrics"
    if otlp:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp)))
        all_readers.append(PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=otlp), export_interval_millis=otlp_interval_s * 1000))
    meter_provider = MeterProvider(resource=resource, metric_readers=all_readers)
    return Providers(tracer_provider, meter_provider, spans, summary, url, all_readers)
