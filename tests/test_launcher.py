"""The real `opentelemetry-instrument` launcher, in a subprocess, on a script that
has no OpenTelemetry code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.subprocess


def _launch(*script_args, env_extra=None, pythonpath=()):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_SERVICE_NAME": "launcher-test", "PIP_NO_INDEX": "1",
                "PYTHONPATH": os.pathsep.join(map(str, pythonpath))})
    env.update(env_extra or {})
    cmd = [str(BIN / "opentelemetry-instrument"), "--traces_exporter", "console",
           "--metrics_exporter", "console", sys.executable, str(HERE / "scripts" / "convert_small.py"),
           *script_args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "converted Network" in out.stdout
    return out.stdout


def test_launcher_prints_our_spans_and_metrics():
    out = _launch()
    assert '"name": "spikeformer.convert sinabs"' in out
    assert '"name": "spikeformer.export sinabs"' in out
    assert '"spikeformer.model.type": "Sequential"' in out
    for metric in ("spikeformer.conversions", "spikeformer.conversion.duration",
                   "spikeformer.active_conversions", "spike_compiler.compilations",
                   "spike_compiler.compilation.duration"):
        assert f'"name": "{metric}"' in out, metric
    assert '"hardware_target": "none"' in out and '"target_hardware": "nir"' in out


def test_launcher_switches_on_a_seed_kit_found_only_on_pythonpath(tmp_path):
    import shutil

    shutil.copytree(HERE / "kits", tmp_path / "kits")
    out = _launch("--seed-kit", pythonpath=[tmp_path / "kits"])
    assert '"name": "spikeformer.compile spike_transformer_compiler"' in out
    assert '"target_hardware": "loihi3"' in out


def test_disabled_instrumentations_leaves_everything_unpatched():
    out = _launch(env_extra={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "spikeformer"})
    assert "spikeformer.convert" not in out
    assert "spikeformer.conversions" not in out
