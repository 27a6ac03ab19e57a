"""The README's main command, ``spikeformer-otel demo``, run as a new user would,
from the environment under test; and, where asked, ``scripts/demo.sh`` from a
fresh virtual environment (it pip-installs: SPIKEFORMER_TEST_BOOTSTRAP=1)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = [str(Path(sys.executable).parent / "spikeformer-otel"), "demo"]
pytestmark = pytest.mark.subprocess


def _env():
    # as a new user: no OTEL_* settings
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_summary(text: str) -> None:
    for step in range(1, 8):
        assert f"[{step}/7]" in text
    assert "ANN accuracy" in text and "sinabs" in text and "spikingjelly" in text
    assert "NIR graph with" in text
def test_demo_console_summary():
    out = subprocess.run([*DEMO, "--epochs", "3", "--timesteps", "8"],
                         capture_output=True, text=True, timeout=600, env=_env(), cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    _assert_summary(text)
    assert re.search(r"\[7/7\] Mapping .* SpiNNaker board \.\.\. 1200 neurons on \d+ application "
                     r"cores of [2-9] chips", text)
    for span in ("spikeformer.convert sinabs", "spikeformer.convert spikingjelly",
                 "spikeformer.calibrate", "spikeformer.convert_layer", "spikeformer.export sinabs",
                 "spikeformer.compile spynnaker  ", "spikeformer.stage Mapping Stage",
                 "spikeformer.stage Application Placer", "spikeformer.stage Pair compressor"):
        assert span in text, span
    # core, monitor (auto-attached to the converted models) and host adapter metrics,
    # all under the one instrumentation scope the summary shows
    for metric in ("spikeformer.conversions", "spikeformer.conversion.duration",
                   "spike_compiler.compilations", "neural.spikes", "neural.synops",
                   "spike_compiler.energy_estimate", "energy_efficiency_ratio", "hw.status",
                   "neuromorphic.compile.core_utilization",
                   "neuromorphic.compile.routing_entries"):
        assert f"  {metric} [" in text, metric
    assert "neuron_type=IAFSqueeze" in text and "neuron_type=IFNode" in text


def test_demo_prometheus_endpoint():
    port = _free_port()
    proc = subprocess.Popen(
        [*DEMO, "--epochs", "2", "--timesteps", "4", "--exporter",
         "prometheus", "--host", "127.0.0.1", "--port", str(port), "--serve", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd="/")
    try:
        deadline = time.time() + 300
        body = ""
        while time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("Serving"):
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
                break
        assert body, proc.stderr.read()[-3000:] if proc.poll() is not None else "no Serving line"
        assert 'spikeformer_conversions_total{' in body
        assert 'framework="spikingjelly"' in body
        assert "spikeformer_conversion_duration_seconds_bucket" in body
        assert 'spike_compiler_compilations_total{' in body
        assert 'neural_spikes_total{' in body and 'hw_status{' in body
        assert 'neuromorphic_compile_core_utilization{' in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.servers
def test_demo_otlp_reaches_a_real_receiver(tmp_path):
    from collector_support import Process, free_port, parse_metric_names, parse_spans, rotel_agent, wait_until

    grpc_port, http_port = free_port(), free_port()
    rotel = Process(
        [str(rotel_agent()), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}", "--exporter", "blackhole",
         "--debug-log", "traces", "--debug-log", "metrics", "--debug-log-verbosity", "detailed",
         "--pid-file", str(tmp_path / "rotel.pid")],
        tmp_path / "rotel.log", env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    try:
        wait_until(lambda: "Starting Rotel" in rotel.output() or not rotel.alive(), timeout=20,
                   what="rotel to start")
        out = subprocess.run(
            [*DEMO, "--epochs", "2", "--timesteps", "4", "--exporter", "none", "--otlp", f"http://127.0.0.1:{grpc_port}"],
            capture_output=True, text=True, timeout=600, env=_env(), cwd="/")
        assert out.returncode == 0, out.stderr[-3000:]
        wait_until(lambda: "neural.spikes" in rotel.output(), timeout=30,
                   what=f"demo metrics at rotel\n{rotel.output()[-2000:]}")
        spans = {s.name: s for s in parse_spans(rotel.output())}
        assert spans["spikeformer.convert sinabs"].attributes["spikeformer.model.type"] == "Sequential"
        assert "spikeformer.calibrate" in spans and "spikeformer.export sinabs" in spans
        assert {"spikeformer.conversions", "neural.spikes", "hw.status"} <= parse_metric_names(rotel.output())
    finally:
        rotel.stop()


@pytest.mark.skipif(os.environ.get("SPIKEFORMER_TEST_BOOTSTRAP") != "1",
                    reason="pip-installs a fresh venv: set SPIKEFORMER_TEST_BOOTSTRAP=1")
def test_demo_script_from_a_fresh_venv(tmp_path):
    """scripts/demo.sh as the README's first command: bootstrap a venv, then the demo."""
    env = {**_env(), "SPIKEFORMER_VENV": str(tmp_path / "venv")}
    env.pop("PIP_NO_INDEX", None)  # pip free to reach the index, as a new user's
    out = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "--epochs", "2", "--timesteps", "4"],
                         capture_output=True, text=True, timeout=1800, env=env, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    _assert_summary(out.stdout)
    assert (tmp_path / "venv" / "bin" / "spikeformer-otel").is_file()
