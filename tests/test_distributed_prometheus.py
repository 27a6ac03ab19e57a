"""The ``spikeformer_prometheus`` exporter (a port per rank, never a crash) and
the warning for the stock ``prometheus`` exporter with several ranks per node.
Two ranks under a real torchrun, scraped: tests/test_multiprocess_torchrun.py."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import urllib.request

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from collector_support import free_port, free_port_run
from opentelemetry_instrumentation_spikeformer.distributed import advice
from opentelemetry_instrumentation_spikeformer.distributed import prometheus as prom

PORT = "OTEL_EXPORTER_PROMETHEUS_PORT"
RANK1 = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
SPAWN_ARGV = ["python", "-c", "from multiprocessing.spawn import spawn_main", "--multiprocessing-fork"]


@pytest.fixture
def env(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", PORT,
                "OTEL_EXPORTER_PROMETHEUS_HOST", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return apply


def test_plan_offsets_the_port_by_local_rank():
    assert prom.plan({PORT: "9000"})[0] == 9000
    port, why = prom.plan({PORT: "9000", **RANK1})
    assert port == 9001 and f"{PORT}=9000 + LOCAL_RANK 1" in why
    assert prom.plan({**RANK1})[0] == prom.DEFAULT_PORT + 1
    assert prom.plan({PORT: "0", **RANK1})[0] == 0  # any free port, each rank its own
    assert prom.plan({PORT: "65535", **RANK1})[0] is None


def test_a_bad_port_is_one_warning_naming_the_variable(caplog):
    with caplog.at_level(logging.WARNING, "spikeformer.prometheus"):
        assert prom.plan({PORT: "http"})[0] == prom.DEFAULT_PORT
    (record,) = caplog.records
    assert PORT in record.getMessage() and "9464" in record.getMessage()


def test_helpers_serve_nothing(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", SPAWN_ARGV)
    port, why = prom.plan({PORT: "9000", **RANK1})
    assert port is None and "multiprocessing child" in why


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_a_rank_serves_its_metrics_on_base_plus_local_rank(env):
    base = free_port_run(2)
    env(**{PORT: str(base)}, **RANK1)
    reader = prom.RankAwarePrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        provider.get_meter("t").create_counter("probe", unit="1").add(3)
        assert reader.port == base + 1
        assert "probe_total" in _scrape(base + 1)
    finally:
        provider.shutdown()
        reader._server.shutdown()
        reader._server.server_close()


def test_a_busy_port_is_one_warning_and_the_sdk_goes_on(env, caplog):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env(**{PORT: str(busy.getsockname()[1])})
        with caplog.at_level(logging.INFO, "spikeformer.prometheus"):
            reader = prom.RankAwarePrometheusMetricReader()  # the stock reader raises here
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("t").create_counter("probe").add(1)
        provider.shutdown()
    assert reader.port is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert PORT in record.getMessage() and "not served" in record.getMessage()


def test_the_busy_port_warning_reaches_stderr_without_logging_configured():
    """The user chose this exporter: its failure is shown like the SDK's own."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = textwrap.dedent(f"""
            import os
            os.environ["{PORT}"] = "{busy.getsockname()[1]}"
            os.environ["OTEL_EXPORTER_PROMETHEUS_HOST"] = "127.0.0.1"
            from opentelemetry_instrumentation_spikeformer.distributed.prometheus import (
                RankAwarePrometheusMetricReader)
            RankAwarePrometheusMetricReader()
            print("went on")
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "went on"
    (line,) = out.stderr.strip().splitlines()
    assert PORT in line and "cannot serve /metrics" in line


def test_the_exporter_is_the_installed_entry_point():
    from importlib.metadata import entry_points

    (ep,) = entry_points(group="opentelemetry_metrics_exporter", name="spikeformer_prometheus")
    assert ep.load() is prom.RankAwarePrometheusMetricReader


# -- the stock exporter: one warning from the rank that won the port ----------
@pytest.fixture
def fresh_advice(monkeypatch):
    monkeypatch.setattr(advice, "_given", set())


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "spikeformer.prometheus" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("exporters, per_node, warned", [
    ("prometheus", "2", True), ("otlp,prometheus", "4", True), ("prometheus", "1", False),
    ("spikeformer_prometheus", "2", False), ("otlp", "2", False)])
def test_stock_prometheus_with_several_ranks_per_node_warns_once(
        fresh_advice, caplog, exporters, per_node, warned):
    environ = {"OTEL_METRICS_EXPORTER": exporters, "LOCAL_WORLD_SIZE": per_node,
               "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port())}
    with caplog.at_level(logging.WARNING):
        advice.check(environ=environ)
        advice.check(environ=environ)
    found = _warnings(caplog)
    assert len(found) == (1 if warned else 0), found
    if warned:
        assert "spikeformer_prometheus" in found[0] and environ[PORT] in found[0]


def test_stock_prometheus_in_the_torchrun_agent_warns(fresh_advice, caplog, monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/python", "/venv/bin/torchrun", "job.py"])
    with caplog.at_level(logging.WARNING):
        advice.check(environ={"OTEL_METRICS_EXPORTER": "prometheus"})
    (found,) = _warnings(caplog)
    assert "torchrun agent" in found
