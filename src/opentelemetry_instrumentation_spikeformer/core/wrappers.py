"""The one wrapper every target row gets (sync and async flavours)."""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .targets import Target

# True while our own telemetry code runs: a wrapped callable it happens to call
# (an extra target on something we use) runs bare instead of recursing.
_IN_TELEMETRY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "spikeformer_in_telemetry", default=False)


def bypass(session: Any) -> bool:
    """Run the call bare: session stopped, instrumentation suppressed, or re-entered."""
    return not session.active or _IN_TELEMETRY.get() or not is_instrumentation_enabled()


def guarded(step: Callable, *args: Any) -> Any:
    """Run one step of our own code with re-entrancy suppressed.

    The flag is cleared with ``set(False)``, not a token reset: steps never
    nest (``bypass`` runs the call bare while it is set), and clearing is then
    correct even when an interrupt lands before the flag was set.
    """
    try:
        _IN_TELEMETRY.set(True)
        return step(*args)
    finally:
        _IN_TELEMETRY.set(False)


# The measured call is a function of its own, not a nested ``try`` in the
# wrapper: CPython leaves the line of a nested ``try:`` outside the enclosing
# ``finally`` (an interrupt reported on that line would skip the release).
def _measured(call: Any, wrapped: Callable, args: tuple, kwargs: dict) -> Any:
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        guarded(call.finish, None, exc)
        raise
    guarded(call.finish, result)
    return result


async def _measured_async(call: Any, wrapped: Callable, args: tuple, kwargs: dict) -> Any:
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        guarded(call.finish, None, exc)
        raise
    guarded(call.finish, result)
    return result


def make_wrapper(target: Target, session: Any) -> Callable:
    """A wrapt wrapper that measures ``target`` while ``session`` is active.

    The wrapped call's return value and exception object pass through
    untouched; ``Telemetry.start`` / ``Call.finish`` swallow their own errors.
    An interrupt (Ctrl-C) anywhere in our code still leaves span, context and
    gauge restored: ``start`` hands the call over in ``started`` before it
    changes anything, and the ``finally`` releases it (a no-op when ``finish``
    completed).
    """
    telemetry = session.telemetry

    def wrapper(wrapped, instance, args, kwargs):
        if bypass(session):
            return wrapped(*args, **kwargs)
        started: list = []  # the call, as soon as start() has made it
        try:
            call = guarded(telemetry.start, target, wrapped, instance, args, kwargs, started)
            if call is None:
                return wrapped(*args, **kwargs)
            return _measured(call, wrapped, args, kwargs)
        finally:
            if started:
                guarded(started[0].release)

    async def async_wrapper(wrapped, instance, args, kwargs):
        if bypass(session):
            return await wrapped(*args, **kwargs)
        started: list = []
        try:
            call = guarded(telemetry.start, target, wrapped, instance, args, kwargs, started)
            if call is None:
                return await wrapped(*args, **kwargs)
            return await _measured_async(call, wrapped, args, kwargs)
        finally:
            if started:
                guarded(started[0].release)

    def choose(original: Any) -> Callable:
        func = getattr(original, "__func__", original)
        return async_wrapper if inspect.iscoroutinefunction(func) else wrapper

    return choose
