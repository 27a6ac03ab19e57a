"""The toolchains that cannot live in the main environment run their tests in
their own (scripts/test.sh creates them with scripts/toolchain-venv.sh):
nengo-loihi needs numpy < 2, Akida is proprietary and kept out of the demo's
environment. Each run also checks those toolchains' patch rows
(tests/test_targets.py) against the installed library."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.subprocess

# venv name, package (test file and row ids), least number of tests that must pass
TOOLCHAINS = [("loihi", "nengo_loihi", 15), ("akida", "akida", 10)]


@pytest.mark.parametrize("venv,package,least", TOOLCHAINS, ids=[t[0] for t in TOOLCHAINS])
def test_toolchain_suite_passes_in_its_environment(venv, package, least):
    python = ROOT / f".venv-{venv}" / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} missing: run scripts/toolchain-venv.sh {venv} "
                    "(scripts/test.sh does)", pytrace=False)
    out = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:nengo",  # nengo 3.2's pytest plugin predates pytest 8
         f"tests/toolchains/test_{package}.py",
         "tests/test_targets.py::test_builtin_row_matches_installed_library", "-k", package],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= least, summary
    assert not re.search(r"failed|skipped|error", summary), summary
