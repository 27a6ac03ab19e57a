"""A monitored model handed to spawn-started workers under the real launcher
(``torch.multiprocessing.spawn`` and a spawn ``DataLoader``): it pickles, the
workers compute what the main process computes, and they start no device
poller, no health server and no Prometheus port although the main process
runs all three (each worker inherits PYTHONPATH and so runs the whole
auto-instrumentation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from collector_support import VENV_BIN, free_port, launcher_env, run

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(300)]
SCRIPT = Path(__file__).parent / "scripts" / "spawn_workers.py"


@pytest.fixture(scope="module")
def reports() -> tuple[dict, list[dict], dict[str, int]]:
    ports = {"health": free_port(), "prometheus": free_port()}
    env = launcher_env(
        OTEL_METRICS_EXPORTER="spikeformer_prometheus", OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(ports["prometheus"]),
        OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS="host",
        OTEL_PYTHON_SPIKEFORMER_HEALTH_SERVER="true",
        OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT=str(ports["health"]))
    out = run([str(VENV_BIN / "opentelemetry-instrument"), sys.executable, str(SCRIPT)],
              timeout=240, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "Error" not in out.stderr, out.stderr[-3000:]
    found = [json.loads(line.split(" ", 1)[1]) for line in out.stdout.splitlines()
             if line.startswith("REPORT ")]
    return found[0], found[1:], ports


def test_the_main_process_polls_and_serves(reports):
    main, _workers, ports = reports
    assert main["where"] == "main" and main["from_model_wrapped"] and main["hooks"] > 0
    assert {"spikeformer-device-poller", "spikeformer-health-server"} <= set(main["threads"])
    assert {ports["health"], ports["prometheus"]} <= set(main["listening"])


def test_the_monitored_model_reaches_both_kinds_of_workers_and_computes_the_same(reports):
    main, workers, _ports = reports
    assert sorted(w["where"] for w in workers) == ["DataLoader worker", "mp.spawn worker 0"]
    for worker in workers:
        assert worker["pid"] != main["pid"]
        assert worker["output"] == main["output"]
        assert worker["hooks"] == 0  # the copy comes unmonitored (monitor/hooks.py)
        assert worker["from_model_wrapped"]  # the launcher instrumented the worker too


def test_workers_start_no_poller_no_health_server_no_prometheus_port(reports):
    _main, workers, _ports = reports
    for worker in workers:
        assert not [t for t in worker["threads"] if t.startswith("spikeformer-")], worker
        assert worker["listening"] == [], worker
