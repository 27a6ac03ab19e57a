"""Fault injection: raise ``KeyboardInterrupt`` at one chosen point of our code.

``Interrupter`` counts, on the calling thread, every line our package runs
and every OpenTelemetry function it enters (``sys.settrace``), and raises at
the N-th: a Ctrl-C that lands exactly there. The wrapped library's own code
and the standard library are not points (an interrupt inside ``logging``'s
lock release would hang logging itself, which is Python's problem, not ours).
``at_call`` raises at the k-th entry of one named function instead.

Lines that begin a ``with`` statement are not points: CPython 3.11 reports
that line again when the block exits, outside the block's exception handler,
so an exception raised there by a tracer skips ``__exit__`` (a lock would stay
held). A real Ctrl-C cannot land there: the interpreter only checks for
signals on calls and backward jumps.
"""

from __future__ import annotations

import linecache
import os
import sys
from typing import Any, Callable

import opentelemetry.context
import opentelemetry_instrumentation_spikeformer as plugin

OURS = os.path.dirname(plugin.__file__) + os.sep
OTEL = os.path.dirname(os.path.dirname(opentelemetry.context.__file__)) + os.sep


class Interrupted(KeyboardInterrupt):
    """The injected interrupt (a KeyboardInterrupt, so nothing may catch it as an error)."""


class Interrupter:
    def __init__(self, at: int | None = None,
                 match: Callable[[Any], bool] | None = None) -> None:
        self.at = at  # raise at this event (1-based); None: only count
        self.match = match  # only these frames count (at_call)
        self.count = 0
        self.fired: str | None = None  # where it was raised

    @classmethod
    def at_call(cls, name: str, occurrence: int = 1, path: str = "") -> "Interrupter":
        """Raise when the ``occurrence``-th call of function ``name`` (in a file under
        ``path``) starts."""
        def match(frame: Any) -> bool:
            code = frame.f_code
            return code.co_name == name and path in code.co_filename
        return cls(occurrence, match)

    def _event(self, frame: Any, event: str) -> None:
        if self.match is not None and (event != "call" or not self.match(frame)):
            return
        self.count += 1
        if self.count == self.at:
            self.fired = f"{frame.f_code.co_filename}:{frame.f_lineno} {event} {frame.f_code.co_name}"
            sys.settrace(None)
            raise Interrupted(self.fired)

    def _global(self, frame: Any, event: str, _arg: Any):
        if self.fired:
            return None
        if self.match is not None:  # a named function, wherever it lives
            self._event(frame, "call")
            return None
        filename = frame.f_code.co_filename
        if filename.startswith(OURS):
            self._event(frame, "call")
            return self._local
        if filename.startswith(OTEL):
            self._event(frame, "call")
        return None

    def _local(self, frame: Any, event: str, _arg: Any):
        if event == "line" and not self.fired and not _is_with(frame):
            self._event(frame, "line")
        return self._local

    def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` with the tracer on; the injected interrupt propagates."""
        sys.settrace(self._global)
        try:
            return fn()
        finally:
            sys.settrace(None)


def _is_with(frame: Any) -> bool:
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).lstrip()
    return line.startswith(("with ", "async with "))
