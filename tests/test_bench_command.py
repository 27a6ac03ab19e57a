"""``spikeformer-otel bench`` through the venv's console script: one-shot table and
plot, periodic mode scraped over Prometheus and stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from device_helpers import free_port

pytestmark = pytest.mark.subprocess

SCRIPT = Path(sys.executable).parent / "spikeformer-otel"
TINY = ["--models", "digits_cnn", "--frameworks", "sinabs", "--timesteps", "4",
        "--epochs", "3", "--latency-samples", "5"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PIP_NO_INDEX="1", **extra)
    return env


def test_one_shot_prints_the_table_writes_the_plot_and_exits_0(tmp_path):
    png = tmp_path / "bench.png"
    done = subprocess.run([str(SCRIPT), "bench", *TINY, "--targets", "loihi,truenorth",
                           "--plot", str(png)], capture_output=True, text=True, timeout=300,
                          env=_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("model "))
    assert header.split() == ["model", "framework", "T", "accuracy", "drop", "p50", "latency",
                              "p95", "latency", "throughput", "sparsity", "SOPs/inf", "uJ",
                              "loihi", "uJ", "truenorth"]
    rows = [line.split() for line in lines if line.startswith("digits_cnn ")]
    assert [r[1] for r in rows] == ["torch", "sinabs"] and rows[1][2] == "4"
    assert rows[0][1:3] == ["torch", "(ANN)"]
    assert float(rows[0][4].rstrip("%")) > 80  # the ANN accuracy, far above chance (10 %)
    assert f"plot: {png}" in done.stdout and png.read_bytes()[:4] == b"\x89PNG"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["--timesteps", "1,2,3,4,5,6,7,8,9"], ["--models", "resnet"],
                                  ["--targets", "speck"], ["--interval", "-1"], ["--runs", "0"]])
def test_usage_errors_exit_64(args):
    done = subprocess.run([str(SCRIPT), "bench", *args], capture_output=True, text=True,
                          timeout=60, env=_env())
    assert done.returncode == 64, done.stderr
    assert "error:" in done.stderr and "Traceback" not in done.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_periodic_mode_keeps_exporting_until_ctrl_c():
    """Interval from the environment; the Prometheus endpoint serves each run's
    results; SIGINT stops it between runs with exit 0 and no traceback."""
    port = free_port()
    proc = subprocess.Popen(
        [str(SCRIPT), "bench", *TINY, "--prometheus", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(OTEL_PYTHON_SPIKEFORMER_BENCH_INTERVAL="1"),
        # as from a terminal: a suite started in the background (nohup, `&`) would
        # pass on an ignored SIGINT, which the child keeps (Python then never raises)
        preexec_fn=_default_sigint)
    try:
        runs, bodies = 0, []
        deadline = time.monotonic() + 240
        while runs < 2 and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("Benchmark run "):
                runs += 1
            elif line.startswith("accuracy: ") and runs:  # the footnote: the table is out
                url = f"http://127.0.0.1:{port}/metrics"
                bodies.append(urllib.request.urlopen(url, timeout=10).read().decode())
        assert runs == 2, proc.stderr.read()[-3000:] if proc.poll() is not None else "timeout"
        for body, at_least in zip(bodies, (1, 2)):
            assert "spikeformer_benchmark_accuracy{" in body
            assert 'network="snn"' in body and 'timesteps="4"' in body
            assert "spikeformer_benchmark_latency_seconds_bucket{" in body
            assert "spikeformer_benchmark_energy_per_inference_mJ{" in body
            runs_line = next(line for line in body.splitlines()
                             if line.startswith("spikeformer_benchmark_runs_total{"))
            assert float(runs_line.rsplit(" ", 1)[1]) >= at_least
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert "stopped" in out
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
