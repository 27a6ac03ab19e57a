"""SDK providers for the ``spikeformer-otel`` commands that produce telemetry
(``demo``, ``bench``): an in-memory copy for what the command prints, plus a
Prometheus endpoint and/or OTLP push when asked. One place, so the commands
export the same way and take the same flags.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

DEFAULT_OTLP = "http://localhost:4317"
# Seconds an OTLP export may take: short, so that a missing collector delays a
# command's exit by seconds, not by the SDK's default retries.
OTLP_TIMEOUT_S = 5


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
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            raise SystemExit(f"spikeformer-otel: cannot serve Prometheus metrics on "
                             f"{host}:{port}: {exc.strerror or exc}") from None
        all_readers.append(PrometheusMetricReader())
        url = f"http://{host}:{port}/metrics"
    if otlp:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        warn_if_unreachable(otlp)
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=otlp, timeout=OTLP_TIMEOUT_S)))
        all_readers.append(PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=otlp, timeout=OTLP_TIMEOUT_S),
            export_interval_millis=otlp_interval_s * 1000))
    meter_provider = MeterProvider(resource=resource, metric_readers=all_readers)
    return Providers(tracer_provider, meter_provider, spans, summary, url, all_readers)


def warn_if_unreachable(otlp: str) -> bool:
    """One line on stderr when nothing listens at the OTLP endpoint; True if reachable."""
    from ..devices.health import Endpoint, check_endpoint, host_port

    endpoint = check_endpoint(Endpoint(*host_port(otlp, 4317)))
    if not endpoint.reachable:
        print(f"spikeformer-otel: OTLP endpoint {endpoint.host}:{endpoint.port} unreachable "
              f"({endpoint.error}); traces and metrics will not arrive: is the collector "
              f"running?", file=sys.stderr)
    return bool(endpoint.reachable)
