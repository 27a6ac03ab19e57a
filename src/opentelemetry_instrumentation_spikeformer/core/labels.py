"""Bounded label values: the first ``limit`` distinct values are kept, later
new ones become ``other``.

For attributes whose values come from the user's program (model classes,
model names): a sweep over dynamically created classes would otherwise make
one series per class, which a synchronous instrument keeps for the life of the
meter provider.
"""

from __future__ import annotations


from . import forksafe
from .attributes import OTHER, UNSPECIFIED


class BoundedLabels:
    """``label(value, limit)``: ``value`` while fewer than ``limit`` distinct
    values have been seen (or it is one of them), else ``other``."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = forksafe.lock()

    def __call__(self, value: str, limit: int) -> str:
        if value in self._seen or value in (OTHER, UNSPECIFIED):
            return value
        with self._lock:
            if value in self._seen or len(self._seen) < limit:
                self._seen.add(value)
                return value
        return OTHER

    def __len__(self) -> int:
        return len(self._seen)
