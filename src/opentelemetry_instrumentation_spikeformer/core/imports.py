"""Run code when a module is imported (now, if it already is).

wrapt keeps a post-import hook until its module is imported and cannot
unregister it, so a module name gets at most one pending hook of ours, which
forwards to the listeners registered at that time: instrumenting again adds no
hook, and uninstrumenting keeps no listener (nor what it references) alive. A
listener that raises never fails the import.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import wrapt

from . import forksafe
from .errors import log_internal_error

Listener = Callable[[Any], None]
_listeners: dict[str, list[Listener]] = {}
_pending: set[str] = set()  # names whose wrapt hook has not fired yet
_lock = forksafe.lock()


def _call(listener: Listener, module: Any) -> None:
    try:
        listener(module)
    except Exception:
        log_internal_error(f"import hook for {getattr(module, '__name__', module)}")


def _fire(module: Any) -> None:
    with _lock:
        _pending.discard(module.__name__)  # wrapt dropped the hook when it fired
        listeners = list(_listeners.get(module.__name__, ()))
    for listener in listeners:
        _call(listener, module)


def listen(name: str, listener: Listener) -> None:
    """Call ``listener(module)`` when ``name`` is imported, or now if it is."""
    with _lock:
        listeners = _listeners.setdefault(name, [])
        if listener not in listeners:
            listeners.append(listener)
        register = name not in _pending and name not in sys.modules
        if register:
            _pending.add(name)
    if register:
        wrapt.register_post_import_hook(_fire, name)  # fires now if imported meanwhile
    elif name in sys.modules:
        _call(listener, sys.modules[name])


def unlisten(listener: Listener) -> None:
    """Forget ``listener`` for every module name."""
    with _lock:
        for listeners in _listeners.values():
            while listener in listeners:
                listeners.remove(listener)


def pending_hooks() -> int:
    """How many of our wrapt hooks wait for an import (bounded by module names)."""
    return len(_pending)
