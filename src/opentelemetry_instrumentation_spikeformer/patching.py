"""Lazy patching: rows are applied by wrapt post-import hooks, so instrumenting
imports none of the target libraries, and a library imported before or after
``instrument()`` is patched either way.

wrapt cannot unregister a hook, so each hook checks that its session is still
the active one; ``stop()`` restores every original we replaced.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable

import wrapt

from .targets import Target
from .telemetry import Telemetry, log_internal_error
from .wrappers import make_wrapper

_LOG = logging.getLogger(__name__)


class SpikeformerWrapper(wrapt.FunctionWrapper):
    """Marks our wrappers, so that re-exports and repeated rows are not wrapped twice."""


@dataclass
class _Patch:
    owner: Any
    attr: str
    original: Any


def _subclasses(cls: type) -> Iterable[type]:
    seen: set[type] = set()
    stack = list(cls.__subclasses__())
    while stack:
        sub = stack.pop()
        if sub not in seen:
            seen.add(sub)
            yield sub
            stack.extend(sub.__subclasses__())


def _current(owner: Any, attr: str) -> Any:
    if isinstance(owner, type):
        return owner.__dict__.get(attr)
    return getattr(owner, attr, None)


class PatchSession:
    """One ``instrument()`` .. ``uninstrument()`` lifetime."""

    def __init__(self, telemetry: Telemetry, targets: Iterable[Target]) -> None:
        self.telemetry = telemetry
        self.active = False
        self._targets = list(targets)
        self._patches: list[_Patch] = []
        self._lock = threading.RLock()

    def start(self) -> None:
        self.active = True
        by_module: dict[str, list[Target]] = {}
        for target in self._targets:
            by_module.setdefault(target.module, []).append(target)
        for module_name, rows in by_module.items():
            wrapt.register_post_import_hook(partial(self._on_import, rows), module_name)

    def stop(self) -> None:
        self.active = False
        with self._lock:
            patches, self._patches = self._patches, []
        for patch in reversed(patches):
            if isinstance(_current(patch.owner, patch.attr), SpikeformerWrapper):
                setattr(patch.owner, patch.attr, patch.original)
            else:
                _LOG.debug("%r.%s was re-wrapped by someone else; leaving our inactive "
                           "wrapper in place", patch.owner, patch.attr)

    @property
    def patched(self) -> list[tuple[Any, str]]:
        with self._lock:
            return [(p.owner, p.attr) for p in self._patches]

    # A post-import hook that raises would make the user's import fail.
    def _on_import(self, rows: list[Target], module: Any) -> None:
        if not self.active:
            return
        for row in rows:
            try:
                self._patch_row(module, row)
            except Exception:
                log_internal_error(f"patching {row.function_name}")

    def _patch_row(self, module: Any, row: Target) -> None:
        *path, attr = row.qualname.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part, None)
            if owner is None:
                _LOG.debug("%s: %s not found; row skipped", row.function_name, part)
                return
        if _current(owner, attr) is None:
            _LOG.debug("%s not found; row skipped", row.function_name)
            return
        self._apply(owner, attr, row)
        if row.subclasses and isinstance(owner, type):
            for sub in _subclasses(owner):
                if attr in sub.__dict__:
                    self._apply(sub, attr, row)

    def _apply(self, owner: Any, attr: str, row: Target) -> None:
        with self._lock:
            original = _current(owner, attr)
            if isinstance(original, SpikeformerWrapper):
                # A re-export of a function we already wrapped (sinabs.from_model
                # imported after sinabs.from_torch was patched): remember how to
                # restore it, do not wrap twice.
                if not any(p.owner is owner and p.attr == attr for p in self._patches):
                    self._patches.append(_Patch(owner, attr, original.__wrapped__))
                return
            wrapper = SpikeformerWrapper(original, make_wrapper(row, self)(original))
            setattr(owner, attr, wrapper)
            self._patches.append(_Patch(owner, attr, original))
