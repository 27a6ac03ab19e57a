"""A minimal OTLP/HTTP receiver (protobuf) for tests that need what a launched
process exported with nanosecond timestamps: spans and gauge points."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass
class Span:
    name: str
    span_id: bytes
    parent_id: bytes | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool
    events: list[str] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


class OtlpReceiver:
    """``with OtlpReceiver() as rx:`` serves http://127.0.0.1:<rx.port>."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.gauges: dict[tuple[str, tuple], float] = {}  # latest value per name and attributes
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.endswith("/v1/traces"):
                    receiver._traces(body)
                    reply = ExportTraceServiceResponse()
                elif self.path.endswith("/v1/metrics"):
                    receiver._metrics(body)
                    reply = ExportMetricsServiceResponse()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        found = [
            Span(s.name, s.span_id, s.parent_span_id or None, s.start_time_unix_nano,
                 s.end_time_unix_nano, _attrs(s.attributes), s.status.code == 2,
                 [e.name for e in s.events])
            for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        with self._lock:
            self.spans.extend(found)

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        with self._lock:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.WhichOneof("data") != "gauge":
                            continue
                        for point in metric.gauge.data_points:
                            value = point.as_int if point.WhichOneof("value") == "as_int" \
                                else point.as_double
                            key = tuple(sorted(_attrs(point.attributes).items()))
                            self.gauges[(metric.name, key)] = value

    def gauge(self, name: str) -> dict[tuple, float]:
        """Attributes (sorted items) -> latest value of one gauge."""
        return {attrs: v for (n, attrs), v in self.gauges.items() if n == name}

    def env(self) -> dict[str, str]:
        """Launcher settings that export spans and metrics here."""
        return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint}

    def __enter__(self) -> "OtlpReceiver":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
