"""Lazy patching: rows are applied by wrapt post-import hooks, so instrumenting
imports none of the target libraries, and a library imported before or after
``instrument()`` is patched either way.

The first import of a package that a framework extension is registered for
loads that extension and adds its rows (``core.imports`` runs the hooks).
``stop()`` restores every original we replaced.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from typing import Any, Iterable

import wrapt

from .. import frameworks
from ..environment_variables import OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS
from . import forksafe
from .errors import log_internal_error
from .imports import listen, unlisten
from .targets import Target
from .wrappers import make_wrapper

_LOG = logging.getLogger(__name__)


class _BoundWrapper(wrapt.BoundFunctionWrapper):
    """A wrapped method looked up on a class or an instance; pickles as that lookup."""

    def __reduce_ex__(self, protocol: int) -> Any:
        instance = self._self_instance
        owner = instance if instance is not None else self._self_parent._self_patched_owner
        return getattr, (owner, self.__wrapped__.__name__)


class SpikeformerWrapper(wrapt.FunctionWrapper):
    """Marks our wrappers, so that re-exports and repeated rows are not wrapped
    twice. Pickles by reference, as the function it wraps does
    (``pickle.dumps(sinabs.from_model)``), so a pickle loads without the plugin."""

    __bound_function_wrapper__ = _BoundWrapper

    def __init__(self, wrapped: Any, wrapper: Any, owner: Any) -> None:
        super().__init__(wrapped, wrapper)
        self._self_patched_owner = owner

    def __reduce_ex__(self, protocol: int) -> Any:
        return self.__wrapped__.__qualname__


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


def _missing(module: str) -> bool:
    """No such module (found without importing it; its parent is imported already).
    A module already imported is there even without a ``__spec__`` (``__main__`` of
    a script, a module built at run time), where ``find_spec`` raises."""
    if sys.modules.get(module) is not None:
        return False
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _current(owner: Any, attr: str) -> Any:
    if isinstance(owner, type):
        return owner.__dict__.get(attr)
    return getattr(owner, attr, None)


class PatchSession:
    """One ``instrument()`` .. ``uninstrument()`` lifetime."""

    def __init__(self, telemetry: Any, extra_rows: Iterable[Target] = (),
                 packages: Iterable[str] | None = None) -> None:
        self.telemetry = telemetry
        self.active = False
        self._packages = tuple(frameworks.packages() if packages is None else packages)
        self._rows: dict[str, list[Target]] = {}  # module name -> rows waiting for it
        self._patches: list[_Patch] = []
        # id(original) -> our wrapper, so that a re-export bound before the
        # extension loaded (sinabs.from_model) gets the very same wrapper object.
        self._wrappers: dict[int, SpikeformerWrapper] = {}
        self._lock = forksafe.rlock()
        # parent module -> extra rows in a submodule of it, checked for existence
        # when the parent is imported (finding a submodule then imports nothing new)
        self._submodules: dict[str, list[Target]] = {}
        for row in extra_rows:
            self._add_row(row)
            parent = row.module.rpartition(".")[0]
            if parent:
                self._submodules.setdefault(parent, []).append(row)
            elif _missing(row.module):
                _LOG.warning("%s: module %s not found; target %s waits for it to be imported",
                             OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS, row.module, row.function_name)

    # -- lifetime -------------------------------------------------------------
    def start(self) -> None:
        self.active = True
        for name in (*self._packages, *list(self._rows), *list(self._submodules)):
            listen(name, self.imported)

    def stop(self) -> None:
        self.active = False
        unlisten(self.imported)
        with self._lock:
            patches, self._patches = self._patches, []
            self._wrappers.clear()
        for patch in reversed(patches):
            if isinstance(_current(patch.owner, patch.attr), SpikeformerWrapper):
                setattr(patch.owner, patch.attr, patch.original)
            else:
                _LOG.debug("%r.%s was re-wrapped by someone else; leaving our inactive "
                           "wrapper in place", patch.owner, patch.attr)

    # -- imports ----------------------------------------------------------------
    def imported(self, module: Any) -> None:
        if not self.active:
            return
        name = module.__name__
        if name in self._packages:
            framework = frameworks.for_package(name)
            if framework is not None:
                self.add_framework(framework)
        for row in self._rows.get(name, ()):
            try:
                self._patch_row(module, row)
            except Exception:
                log_internal_error(f"patching {row.function_name}")
        for row in self._submodules.get(name, ()):
            if row.module not in sys.modules and _missing(row.module):
                _LOG.warning("%s: module %s not found; target %s skipped",
                             OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS, row.module,
                             row.function_name)

    def add_framework(self, framework: frameworks.Framework) -> None:
        """Watch every module a framework's rows live in."""
        added = set()
        for target in framework.targets:
            for row in target.expanded():
                if self._add_row(row):
                    added.add(row.module)
        for name in added:
            listen(name, self.imported)

    def _add_row(self, row: Target) -> bool:
        rows = self._rows.setdefault(row.module, [])
        if row in rows:
            return False
        rows.append(row)
        return True

    def _patch_row(self, module: Any, row: Target) -> None:
        *path, attr = row.qualname.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part, None)
            if owner is None:
                break
        if owner is None or _current(owner, attr) is None:
            # A built-in row may name a function another library version lacks;
            # an extra target is the user's explicit request: say so.
            log = _LOG.warning if row.extra else _LOG.debug
            log("%s: %s not found in module %s; target skipped",
                OTEL_PYTHON_SPIKEFORMER_EXTRA_TARGETS if row.extra else row.framework,
                row.qualname, row.module)
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
            wrapper = self._wrappers.get(id(original))
            if wrapper is None or wrapper.__wrapped__ is not original:
                if row.wrapper is not None:
                    wrap = row.wrapper(self)
                else:
                    wrap = make_wrapper(row, self)(original)
                wrapper = self._wrappers[id(original)] = SpikeformerWrapper(original, wrap, owner)
            setattr(owner, attr, wrapper)
            self._patches.append(_Patch(owner, attr, original))
