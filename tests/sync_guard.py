"""A fixture that records every syncing tensor method our package calls: the
forward path must never wait for the device."""

from __future__ import annotations

import sys

import pytest

_SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def sync_guard(monkeypatch):
    """Record any syncing tensor method called from our package's code."""
    import torch

    calls: list[str] = []
    for name in _SYNCING:
        original = getattr(torch.Tensor, name)

        def guarded(self, *args, __name=name, __original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "opentelemetry_instrumentation_spikeformer" in caller:
                calls.append(f"{__name} from {caller}:{sys._getframe(1).f_lineno}")
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, guarded)
    return calls
