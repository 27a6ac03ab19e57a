"""HealthChecker rules, exporter endpoints, SDK check and the HTTP endpoints over loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from device_helpers import Empty, Flaky, Steady, enabled, free_port, wait_for

from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
from opentelemetry_instrumentation_spikeformer.devices.host import HostAdapter
from opentelemetry_instrumentation_spikeformer.devices.loihi import LoihiAdapter
from opentelemetry_instrumentation_spikeformer.devices.poller import Poller
from opentelemetry_instrumentation_spikeformer.devices.health import (
    HealthChecker, exporter_endpoints,
)
from opentelemetry_instrumentation_spikeformer.devices.health_server import HealthServer

NO_EXPORTERS = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none"}


@pytest.fixture
def listening():
    """A TCP port on loopback that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def _checker(otel, *adapters, required=(), environ=NO_EXPORTERS):
    poller = Poller(enabled(*adapters, required=required), 1.0, 0.5)
    poller.run_once()
    return HealthChecker(load_settings(environ={}), poller=poller, environ=environ,
                         tracer_provider=otel.tracer_provider,
                         meter_provider=otel.meter_provider), poller


def test_healthy(otel):
    checker, poller = _checker(otel, Steady(), HostAdapter())
    status = checker.check_all()
    assert status.overall == "healthy", status.reasons
    assert status.exit_code == 0 and status.reasons == []
    assert status.system["memory_percent"] > 0
    assert status.telemetry["sdk_configured"] is True
    poller.stop()


def test_optional_device_down_is_degraded_required_is_unhealthy(otel):
    checker, poller = _checker(otel, Steady(), Flaky())
    status = checker.check_all()
    assert status.overall == "degraded" and status.exit_code == 1
    assert any("flaky/flaky0 failed" in r for r in status.reasons)
    poller.stop()

    checker, poller = _checker(otel, Steady(), Flaky(), required=("flaky",))
    status = checker.check_all()
    assert status.overall == "unhealthy" and status.exit_code == 2
    assert status.to_dict()["hardware"]["flaky"]["status"] == "down"
    poller.stop()


def test_check_hardware_attributes_as_in_the_design(otel):
    checker, poller = _checker(otel, Steady(), LoihiAdapter(), Empty(), required=("loihi",))
    hw = checker.check_hardware()
    assert hw.steady == "up"
    assert hw.loihi3 == "down" and hw.loihi2 == "down"  # required, lava missing
    assert hw.empty == "absent"
    assert hw.spinnaker == "absent"  # a known kind, not enabled here
    with pytest.raises(AttributeError):
        hw.warp_drive
    poller.stop()


def test_one_shot_probe_when_no_feature_is_running():
    checker = HealthChecker(load_settings({"device_adapters": "host"}, environ={}),
                            environ=NO_EXPORTERS)
    hw = checker.check_hardware()
    assert hw.host == "up" and list(hw.adapters) == ["host"]


def test_exporter_endpoints_from_the_standard_variables():
    default = exporter_endpoints({})
    assert [(e.host, e.port) for e in default] == [("localhost", 4317)]
    assert default[0].exporters == ["otlp-grpc/traces", "otlp-grpc/metrics", "otlp-grpc/logs"]
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "prometheus",
           "OTEL_EXPORTER_PROMETHEUS_PORT": "9999", "OTEL_LOGS_EXPORTER": "console",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example:443/v1/traces"}
    found = {(e.host, e.port): e.exporters for e in exporter_endpoints(env)}
    assert found == {("collector.example", 443): ["otlp-http/traces"],
                     ("localhost", 9999): ["prometheus"]}
    assert exporter_endpoints(NO_EXPORTERS) == []
    bare = exporter_endpoints({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel:4317",
                               "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"})
    assert [(e.host, e.port) for e in bare] == [("otel", 4317)]


def test_unreachable_exporter_is_degraded(otel, listening):
    env = {**NO_EXPORTERS, "OTEL_TRACES_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{listening}"}
    checker, poller = _checker(otel, Steady(), environ=env)
    status = checker.check_all()
    assert status.overall == "healthy" and status.exporters[0].reachable is True
    closed = free_port()
    checker.environ = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed}"}
    status = checker.check_all()
    assert status.overall == "degraded"
    assert status.exporters[0].reachable is False
    assert f"127.0.0.1:{closed} unreachable" in status.reasons[0]
    poller.stop()


def test_no_sdk_configured_is_reported():
    checker = HealthChecker(load_settings({"device_adapters": "host"}, environ={}),
                            environ=NO_EXPORTERS)  # global providers: the API's proxies
    status = checker.check_all()
    assert status.telemetry["sdk_configured"] is False
    assert status.overall == "degraded"
    assert any("no OTel SDK configured" in r for r in status.reasons)


# -- HTTP ------------------------------------------------------------------------
def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_endpoints_over_loopback(otel):
    checker, poller = _checker(otel, Steady(), Flaky())
    server = HealthServer(checker, "127.0.0.1", 0, cache_s=0.0)  # no cache: see each change
    try:
        code, body = _get(f"{server.url}/health")
        assert code == 200 and body["status"] == "degraded" and set(body) == {
            "status", "timestamp", "version"}
        code, body = _get(f"{server.url}/health/detailed")
        assert code == 200 and body["hardware"]["steady"]["devices"][0]["power_w"] == 12.5
        assert _get(f"{server.url}/nope")[0] == 404
        checker.poller = Poller(enabled(Flaky(), required=("flaky",)), 1.0, 0.5)
        checker.poller.run_once()
        code, body = _get(f"{server.url}/health")
        assert code == 503 and body["status"] == "unhealthy"
    finally:
        server()
        poller.stop()
    with pytest.raises(OSError):  # the socket is closed
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_health_server_feature_through_the_instrumentor(instrument_devices):
    instrumentor = instrument_devices(health_server=True, health_port=0, device_adapters="host",
                                      device_poll_interval=0.05)
    server = instrumentor._server
    assert isinstance(server, HealthServer) and server.host == "127.0.0.1"
    assert wait_for(lambda: instrumentor.poller.views()[0].status == "up")
    code, body = _get(f"{server.url}/health/detailed")
    assert code == 200 and body["hardware"]["host"]["status"] == "up"
    assert body["telemetry"]["meter_provider"] == "MeterProvider"
    instrumentor.uninstrument()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


APP = '''
import json, os, time, urllib.request
health = f"http://127.0.0.1:{os.environ['OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT']}/health/detailed"
deadline = time.time() + 20
while True:
    try:
        with urllib.request.urlopen(health, timeout=2) as response:
            body = json.load(response)
        if body["hardware"].get("host", {}).get("status") == "up":
            break
    except OSError:
        pass
    if time.time() > deadline:
        raise SystemExit("health server never reported the host up")
    time.sleep(0.1)
prom = f"http://127.0.0.1:{os.environ['OTEL_EXPORTER_PROMETHEUS_PORT']}/metrics"
text = urllib.request.urlopen(prom, timeout=5).read().decode()
print(json.dumps({"health": body, "metrics": text.splitlines()}))
'''


@pytest.mark.subprocess
def test_launcher_serves_health_and_hw_metrics(tmp_path):
    """``opentelemetry-instrument`` with the distro: the app asks its own health server."""
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    health_port, prom_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
               OTEL_METRICS_EXPORTER="prometheus", OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
               OTEL_EXPORTER_PROMETHEUS_PORT=str(prom_port),
               OTEL_PYTHON_SPIKEFORMER_HEALTH_SERVER="true",
               OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT=str(health_port),
               OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS="host",
               OTEL_PYTHON_SPIKEFORMER_DEVICE_POLL_INTERVAL="0.1", PIP_NO_INDEX="1")
    script = tmp_path / "app.py"
    script.write_text(APP)
    done = subprocess.run([str(launcher), sys.executable, str(script)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    health = out["health"]
    assert health["status"] == "healthy", health["reasons"]
    assert health["telemetry"]["sdk_configured"] is True
    assert health["exporters"] == [{"endpoint": f"127.0.0.1:{prom_port}",
                                    "exporters": ["prometheus"], "reachable": True}]
    status = [line for line in out["metrics"] if line.startswith("hw_status{")]
    assert any('hw_id="host"' in line and 'hw_state="ok"' in line and line.endswith(" 1.0")
               for line in status), status
    assert any(line.startswith("system_memory_utilization") for line in out["metrics"])
