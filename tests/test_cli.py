"""``spikeformer-otel`` through the venv's console script: help, health exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collector_support import rotel_agent
from device_helpers import free_port

pytestmark = pytest.mark.subprocess

SCRIPT = Path(sys.executable).parent / "spikeformer-otel"


@pytest.fixture(scope="module")
def otlp_receiver():
    """A real OTLP receiver (rotel) on loopback; yields its gRPC endpoint."""
    binary = str(rotel_agent())
    grpc, http = free_port(), free_port()
    proc = subprocess.Popen([binary, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
                             "--otlp-http-endpoint", f"127.0.0.1:{http}",
                             "--exporter", "blackhole"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", grpc), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("rotel did not start")
        yield f"http://127.0.0.1:{grpc}"
    finally:
        proc.terminate()
        proc.wait(5)


def _run(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.update(PIP_NO_INDEX="1", **env)
    began = time.monotonic()
    done = subprocess.run([str(SCRIPT), *args], env=base, capture_output=True, text=True,
                          timeout=60)
    return done, time.monotonic() - began


def test_help_is_torch_free_and_lists_health():
    done, _ = _run("--help")
    assert done.returncode == 0 and "health" in done.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from opentelemetry_instrumentation_spikeformer.tools.cli "
         "import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
         "print(sorted(m for m in ('torch', 'samna', 'pynvml', 'spinnman', 'psutil') "
         "if m in sys.modules))"],
        capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().splitlines()[-1] == "[]"


def test_healthy_exits_0_with_a_real_otlp_receiver(otlp_receiver):
    done, _ = _run("health", OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS="host",
                   OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver)
    body = json.loads(done.stdout)
    assert done.returncode == 0, body["reasons"]
    assert body["status"] == "healthy"
    assert body["exporters"][0]["reachable"] is True
    assert body["hardware"]["host"]["status"] == "up"


def test_degraded_exits_1_when_the_collector_is_down():
    port = free_port()
    done, _ = _run("health", OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS="host",
                   OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "degraded"


def test_unhealthy_exits_2_when_the_required_spinnaker_board_is_down(otlp_receiver):
    """A board address is set (so the board is required) and nothing answers there."""
    done, elapsed = _run("health", OTEL_PYTHON_SPIKEFORMER_SPINNAKER_HOST="127.0.0.1",
                         OTEL_PYTHON_SPIKEFORMER_PROBE_TIMEOUT="1",
                         OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver)
    body = json.loads(done.stdout)
    assert done.returncode == 2
    assert body["status"] == "unhealthy"
    assert body["hardware"]["spinnaker"]["status"] == "down"
    assert body["hardware"]["spinnaker"]["required"] is True
    assert elapsed < 10


def test_summary_flag_and_usage_errors():
    done, _ = _run("health", "--summary", OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS="loihi",
                   OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
                   OTEL_LOGS_EXPORTER="none")
    assert done.returncode == 2 and set(json.loads(done.stdout)) == {"status", "timestamp",
                                                                    "version"}
    assert _run("health", "--bogus")[0].returncode == 64
    assert _run("no-such-command")[0].returncode == 64


def test_a_check_that_crashes_exits_3(monkeypatch, capsys):
    from opentelemetry_instrumentation_spikeformer.devices import health
    from opentelemetry_instrumentation_spikeformer.tools import cli

    def broken(self):
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(health.HealthChecker, "check_all", broken)
    assert cli.main(["health"]) == 3
    assert json.loads(capsys.readouterr().out) == {
        "status": "unknown", "error": "RuntimeError: registry exploded"}


@pytest.mark.parametrize("command, extra", [("bench", "[bench]"), ("demo", "[bench]")])
def test_missing_library_is_one_line_naming_the_extra(monkeypatch, command, extra):
    """Without scikit-learn the command stops before it starts, saying what to install."""
    from opentelemetry_instrumentation_spikeformer.tools import cli, requirements

    real = requirements._installed
    monkeypatch.setattr(requirements, "_installed", lambda m: m != "sklearn" and real(m))
    with pytest.raises(SystemExit) as stop:
        cli.main([command])
    assert str(stop.value) == (
        f"spikeformer-otel {command}: scikit-learn is not installed (module sklearn): "
        f"pip install 'opentelemetry-instrumentation-spikeformer{extra}'")
