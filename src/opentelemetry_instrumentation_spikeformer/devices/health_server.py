"""``/health`` and ``/health/detailed`` over HTTP (stdlib server, daemon thread).

Started by the devices instrumentor when ``OTEL_PYTHON_SPIKEFORMER_HEALTH_SERVER=true``; binds
``health_host``:``health_port`` (loopback by default). Status 200 when healthy
or degraded, 503 when unhealthy; the body is JSON. Stopping closes the socket.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .health import HTTP_CODES, HealthChecker

_LOG = logging.getLogger(__name__)
ROUTES = {"/health": "summary", "/health/detailed": "to_dict"}


class _Handler(BaseHTTPRequestHandler):
    checker: HealthChecker  # set on the per-server subclass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body_of = ROUTES.get(self.path.split("?", 1)[0].rstrip("/") or "/")
        if body_of is None:
            self._send(404, {"error": "not found", "paths": sorted(ROUTES)})
            return
        try:
            status = self.checker.check_all()
        except Exception as exc:
            self._send(500, {"status": "unknown", "error": f"{type(exc).__name__}: {exc}"})
            return
        self._send(HTTP_CODES[status.overall], getattr(status, body_of)())

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # keep the user's stderr clean
        _LOG.debug("health server: " + format, *args)


class HealthServer:
    """A running server; call it to stop. ``url`` tells where it listens."""

    def __init__(self, checker: HealthChecker, host: str, port: int) -> None:
        handler = type("HealthHandler", (_Handler,), {"checker": checker})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="spikeformer-health-server")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __call__(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
