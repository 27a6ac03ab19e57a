"""Our locks and events start free in a forked child.

``fork()`` copies a lock in whatever state it is in: one held by another
thread at that moment (a metric collection reading the monitors, a device
probe storing its result) stays held forever in the child, whose next
collection then hangs. Every lock and event of ours is made here and is
reset in the child (``os.register_at_fork``), as the standard library does
for its own (logging, threading, queue).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_TRACKED: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _track(obj: Any) -> Any:
    _TRACKED.add(obj)
    return obj


def lock() -> Any:
    return _track(threading.Lock())


def rlock() -> Any:
    return _track(threading.RLock())


def event() -> threading.Event:
    return _track(threading.Event())


def _reinit_after_fork() -> None:
    for obj in list(_TRACKED):
        reinit = getattr(obj, "_at_fork_reinit", None)  # Lock, RLock, Event (3.9+)
        if reinit is not None:
            reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
