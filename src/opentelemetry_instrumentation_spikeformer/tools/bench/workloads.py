"""The data sets and the trained networks (ANNs, and SNNs trained directly),
made once per process.

Periodic runs (and tests) reuse them: a run benchmarks the conversion and the
inference, not the training. With a cache directory the weights also survive
the process: ``<model>-seed<seed>-e<epochs>.pt``, trained on a miss.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .. import digits
from .spec import MODELS

_LOG = logging.getLogger(__name__)

TRAINED, LOADED, REUSED = "trained", "loaded", "reused"


class Workloads:
    def __init__(self, cache_dir: str | None = None) -> None:
        self.cache_dir = cache_dir
        self._data: dict[tuple[int, int], Any] = {}
        self._anns: dict[tuple[str, int, int], Any] = {}

    def data(self, seed: int, size: int = 8) -> digits.DigitsData:
        """The digits split by ``seed``, ``size`` x ``size`` pixels."""
        found = self._data.get((seed, size))
        if found is None:
            found = self._data[(seed, size)] = digits.load_digits(seed=seed, size=size)
        return found

    def ann(self, name: str, seed: int, epochs: int) -> tuple[Any, str]:
        """The trained network for ``name`` (a ``spec.MODELS`` key: an ANN, or an
        SNN trained directly) and how it was got."""
        key = (name, seed, epochs)
        found = self._anns.get(key)
        if found is not None:
            return found, REUSED
        spec = MODELS[name]
        model = spec.build(seed)
        how = self._load(model, key)
        if how is None:
            model = spec.build(seed)  # fresh: a failed load may leave half the weights
            digits.train(model, self.data(seed, spec.image_size), epochs=epochs, seed=seed,
                         lr=spec.lr, batch_size=spec.batch_size)
            self._save(model, key)
            how = TRAINED
        model.eval()
        self._anns[key] = model
        return model, how

    def _path(self, key: tuple[str, int, int]) -> str | None:
        if not self.cache_dir:
            return None
        name, seed, epochs = key
        return os.path.join(self.cache_dir, f"{name}-seed{seed}-e{epochs}.pt")

    def _load(self, model: Any, key: tuple[str, int, int]) -> str | None:
        path = self._path(key)
        if path is None or not os.path.exists(path):
            return None
        import torch

        try:
            model.load_state_dict(torch.load(path, weights_only=True))
        except Exception as exc:  # a stale or foreign file: train instead
            _LOG.warning("cannot load %s (%s); training instead", path, exc)
            return None
        return LOADED

    def _save(self, model: Any, key: tuple[str, int, int]) -> None:
        path = self._path(key)
        if path is None:
            return
        import torch

        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            tmp = path + ".tmp"
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, path)
        except OSError as exc:
            _LOG.warning("cannot save trained weights to %s (%s)", path, exc.strerror or exc)
