"""README tells the truth: generated tables match the code, the two commands exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_the_code():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_commands_exist_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    for command in ("scripts/demo.sh", "scripts/test.sh"):
        assert command in readme
        assert os.access(ROOT / command, os.X_OK)
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "exec scripts/test.sh"
