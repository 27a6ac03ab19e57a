"""Tests of the toolchains that live in an environment of their own
(``.venv-loihi``, ``.venv-akida``; scripts/toolchain-venv.sh): collected only
where their library is installed. The main suite runs them there
(tests/test_toolchain_venvs.py)."""

import importlib.util

collect_ignore = [f"test_{package}.py" for package in ("nengo_loihi", "akida")
                  if importlib.util.find_spec(package) is None]
