"""``/health`` and ``/health/detailed`` over HTTP (stdlib server, daemon threads).

Started by the devices instrumentor when ``OTEL_PYTHON_SPIKEFORMER_HEALTH_SERVER=true``; binds
``health_host``:``health_port`` (loopback by default; IPv6 hosts such as ``::1``
too). Status 200 when healthy or degraded, 503 when unhealthy; the body is
JSON. Stopping closes the socket.

It lives inside the user's program, so it must never cost that program much:

- one check serves every request for ``CACHE_S`` (a burst of requests runs the
  check, with its TCP probes of the exporter endpoints, once);
- at most ``MAX_CLIENTS`` handler threads; a connection that finds none free
  within ``SLOT_WAIT_S`` gets a 503 "busy" and is closed;
- a client that sends nothing is dropped after ``IDLE_TIMEOUT_S``;
- a client that goes away mid-request (broken pipe, reset) is a debug log line,
  never a traceback on the program's stderr.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..core import forksafe
from .health import HTTP_CODES, HealthChecker

_LOG = logging.getLogger(__name__)
ROUTES = {"/health": "summary", "/health/detailed": "to_dict"}
CACHE_S = 1.0
MAX_CLIENTS = 16
IDLE_TIMEOUT_S = 1.0
SLOT_WAIT_S = 2.0
BACKLOG = 256
_BUSY_BODY = b'{"status": "busy"}'
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Retry-After: 1\r\nConnection: close\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class CachedCheck:
    """``check_all()`` at most once per ``max_age`` seconds; concurrent callers
    wait for the one check in progress and share its result (or its error)."""

    def __init__(self, checker: HealthChecker, max_age: float = CACHE_S) -> None:
        self.checker = checker
        self.max_age = max_age
        self._lock = forksafe.lock()
        self._at = -float("inf")
        self._result: Any = None
        self._error: Exception | None = None

    def __call__(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at >= self.max_age:
                try:
                    self._result, self._error = self.checker.check_all(), None
                except Exception as exc:  # reported as a 500, cached like a result
                    self._result, self._error = None, exc
                self._at = time.monotonic()
            if self._error is not None:
                raise self._error
            return self._result


class _Handler(BaseHTTPRequestHandler):
    check: CachedCheck  # set on the per-server subclass
    timeout = IDLE_TIMEOUT_S  # socket timeout: an idle client does not hold a thread

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body_of = ROUTES.get(self.path.split("?", 1)[0].rstrip("/") or "/")
        if body_of is None:
            self._send(404, {"error": "not found", "paths": sorted(ROUTES)})
            return
        try:
            status = self.check()
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


class _Server(ThreadingHTTPServer):
    """Bounded handler threads; client errors logged at debug level only."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type) -> None:
        self.address_family = _family(*address)
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: Any) -> None:
        try:
            request.settimeout(0.2)
            request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("health server: client %s went away", client_address, exc_info=True)


def _family(host: str, port: int) -> socket.AddressFamily:
    """AF_INET6 for ``::1`` and other IPv6 hosts, else what the name resolves to first."""
    try:
        infos = socket.getaddrinfo(host or None, port, 0, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
    except socket.gaierror:
        return socket.AF_INET
    return infos[0][0] if infos else socket.AF_INET


class HealthServer:
    """A running server; call it to stop. ``url`` tells where it listens."""

    def __init__(self, checker: HealthChecker, host: str, port: int,
                 cache_s: float = CACHE_S) -> None:
        handler = type("HealthHandler", (_Handler,), {"check": CachedCheck(checker, cache_s)})
        self._server = _Server((host, port), handler)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="spikeformer-health-server")
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __call__(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
