"""Is SynSense's real samna installed? Answered without importing it: PyPI's
``samna`` is a stub whose import runs pip against SynSense's index."""

from __future__ import annotations

import importlib.util

STUB_MARK = "PYPI_SAMNA"


def samna_status() -> tuple[bool, str]:
    """(real samna importable, one-line reason)."""
    try:
        spec = importlib.util.find_spec("samna")
    except (ImportError, ValueError) as exc:
        return False, f"samna lookup failed: {exc}"
    if spec is None:
        return False, "samna is not installed"
    origin = spec.origin
    if origin and origin.endswith(".py"):
        try:
            with open(origin, encoding="utf-8", errors="replace") as handle:
                if STUB_MARK in handle.read():
                    return False, "PyPI samna stub installed (it fetches the real SDK from SynSense's index on import)"
        except OSError as exc:
            return False, f"samna unreadable: {exc}"
    return True, f"samna at {origin or spec.submodule_search_locations}"


def real_samna_installed() -> bool:
    return samna_status()[0]
