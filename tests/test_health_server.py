"""The health server inside the user's program (issue 11, item 9): many and idle
clients, bursts, clients that vanish, IPv6. A stand-in checker counts checks."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import struct
import threading
import time
import urllib.request

import pytest

from opentelemetry_instrumentation_spikeformer.devices import health_server
from opentelemetry_instrumentation_spikeformer.devices.health import HealthChecker
from opentelemetry_instrumentation_spikeformer.devices.health_server import HealthServer


class CountingChecker(HealthChecker):
    """A real HealthChecker on a host-only poller, counting its full checks."""

    def __init__(self, delay: float = 0.0):
        from opentelemetry_instrumentation_spikeformer.core.settings import load_settings

        super().__init__(load_settings({"device_adapters": "none"}), poller=lambda: None,
                         environ={"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                                  "OTEL_LOGS_EXPORTER": "none"})
        self.delay = delay
        self.checks = 0
        self._count = threading.Lock()

    def check_all(self):
        with self._count:
            self.checks += 1
        time.sleep(self.delay)  # the TCP probes of a real check take time
        return super().check_all()


@pytest.fixture
def server():
    started = []

    def start(checker=None, host="127.0.0.1", **kwargs):
        srv = HealthServer(checker or CountingChecker(), host, 0, **kwargs)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv()


def get(url: str, timeout: float = 10.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def idle_clients(port: int, count: int, family=socket.AF_INET, host="127.0.0.1"):
    clients = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.connect((host, port))
        clients.append(sock)
    return clients


def test_burst_of_requests_runs_the_check_once(server):
    checker = CountingChecker(delay=0.3)
    srv = server(checker)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda _: get(f"{srv.url}/health"), range(100)))
    assert set(codes) <= {200, 503}
    assert codes.count(200) >= 90  # a few may be told "busy" while the slots are taken
    assert checker.checks <= 2  # one check (two if the burst outlived the cache)


def test_idle_clients_are_dropped_and_do_not_starve_others(server):
    srv = server()
    before = threading.active_count()
    idle = idle_clients(srv.port, 40)  # connect and say nothing
    try:
        time.sleep(0.3)
        assert threading.active_count() - before <= health_server.MAX_CLIENTS
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(lambda _: get(f"{srv.url}/health"), range(60)))
        elapsed = time.monotonic() - started
        for sock in idle:  # the server hung up on each of them (or told it "busy")
            sock.settimeout(10)
            assert sock.recv(4096) in (b"", health_server._BUSY)
    finally:
        for sock in idle:
            sock.close()
    assert set(codes) <= {200, 503} and codes.count(200) >= 50, codes
    # idle clients hold a slot IDLE_TIMEOUT_S at most: 40 of them, 16 at a time
    assert elapsed < 3 * health_server.IDLE_TIMEOUT_S * 40 / health_server.MAX_CLIENTS + 5


def test_200_concurrent_clients_get_answers_not_resets(server):
    srv = server()
    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        codes = list(pool.map(lambda _: get(f"{srv.url}/health", timeout=30), range(200)))
    assert set(codes) <= {200, 503}  # no reset, no timeout (either would raise)
    assert codes.count(200) >= 150


def test_clients_that_go_away_leave_stderr_clean(server, capfd):
    srv = server()
    for _ in range(20):
        # half a request, then a reset
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        # a whole request for the big body, gone before the answer
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.sendall(b"GET /health/detailed HTTP/1.0\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert get(f"{srv.url}/health") == 200  # still serving
    time.sleep(0.5)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert "Traceback" not in captured.out


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_binds_ipv6_loopback(server):
    srv = server(host="::1")
    assert srv.url.startswith("http://[::1]:")
    assert get(f"{srv.url}/health") == 200
