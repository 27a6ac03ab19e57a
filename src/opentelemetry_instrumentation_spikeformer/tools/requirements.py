"""What the ``spikeformer-otel`` commands need installed, checked before they
start: a missing library is one line naming the extra that brings it, not a
failed case deep inside a run."""

from __future__ import annotations

import importlib.util
from typing import Iterable

PROJECT = "opentelemetry-instrumentation-spikeformer"
# module -> (distribution, how to install it)
_INSTALL = {
    "torch": ("torch", "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"),
    "sklearn": ("scikit-learn", f"pip install '{PROJECT}[bench]'"),
    "matplotlib": ("matplotlib", f"pip install '{PROJECT}[bench]'"),
    "sinabs": ("sinabs", f"pip install '{PROJECT}[snn]'"),
    "spikingjelly": ("spikingjelly", "pip install --no-deps spikingjelly==2.0.0 && "
                                     "pip install loguru h5py scipy tqdm"),
    "opentelemetry.sdk": ("opentelemetry-sdk", f"pip install '{PROJECT}[sdk]'"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(modules: Iterable[str]) -> list[str]:
    """One line per module that is not installed: what it is and how to get it."""
    lines = []
    for module in modules:
        if not _installed(module):
            dist, how = _INSTALL.get(module, (module, f"pip install {module}"))
            lines.append(f"{dist} is not installed (module {module}): {how}")
    return lines


def require(command: str, modules: Iterable[str]) -> None:
    """Exit with one line per missing library (exit status 1)."""
    lines = missing(modules)
    if lines:
        raise SystemExit("\n".join(f"spikeformer-otel {command}: {line}" for line in lines))
