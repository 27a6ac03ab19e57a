"""Importing and instrumenting pulls in none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "sinabs", "spikingjelly", "snntorch", "nirtorch", "nir", "samna", "numpy")


def test_import_pulls_in_no_torch():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import opentelemetry_instrumentation_spikeformer"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "opentelemetry_instrumentation_spikeformer" in imported
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_instrument_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor\n"
        "SpikeformerInstrumentor().instrument()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
