"""``model_name`` of monitored models: stable, distinct and bounded.

A monitored model keeps one name for its life. Automatic names are a base (the
``OTEL_PYTHON_SPIKEFORMER_MODEL_NAME`` setting, else the source model's class)
with ``#2``, ``#3``, ... for each further model of that base alive at the same
time, so two converted ``Sequential``\\ s get two energy series instead of
overwriting one; a name is free again once its model is freed. A name the
user gives (``monitor_model(model, "cnn")``) is used as given. Either way, at
most ``max_models`` distinct names are ever handed out per meter provider;
later new ones are ``other``.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..core import forksafe
from ..core.attributes import OTHER
from ..core.labels import BoundedLabels


class ModelNames:
    """Names handed out for one instrument set (one meter provider)."""

    def __init__(self) -> None:
        self._labels = BoundedLabels()
        self._holders: dict[str, Any] = {}  # name -> weakref to the model holding it
        self._lock = forksafe.lock()

    def assign(self, model: Any, base: str, limit: int, ordinal: bool = True) -> str:
        """The name of ``model``: ``base`` or, with ``ordinal``, the first of
        ``base``, ``base#2``, ... not held by another live model."""
        base = str(base) or OTHER
        with self._lock:
            name, n = base, 1
            while ordinal and base != OTHER:
                holder = self._holders.get(name)
                held_by = holder() if holder is not None else None
                if held_by is None or held_by is model:
                    break
                n += 1
                name = f"{base}#{n}"
            label = self._labels(name, limit)
            if label != OTHER:
                try:
                    self._holders[label] = weakref.ref(model)
                except TypeError:  # not weakly referenceable: nothing to hold
                    pass
            return label
