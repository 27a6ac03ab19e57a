"""A script run by this environment's ``opentelemetry-instrument`` launcher with
console exporters: what a user without torch would see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def launch(script: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_SERVICE_NAME"] = "toolchain-launcher-test"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "opentelemetry-instrument"), "--traces_exporter",
         "console", "--metrics_exporter", "console", "--logs_exporter", "none",
         sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env,
        cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out.stdout
