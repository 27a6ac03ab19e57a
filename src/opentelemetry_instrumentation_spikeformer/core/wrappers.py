"""The one wrapper every target row gets (sync and async flavours)."""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .targets import Target
from .telemetry import current_operation

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
def _measured(call: Any, run: Callable[[], Any]) -> Any:
    try:
        result = run()
    except BaseException as exc:
        guarded(call.finish, None, exc)
        raise
    guarded(call.finish, result)
    return result


async def _measured_async(call: Any, run: Callable[[], Any]) -> Any:
    try:
        result = await run()
    except BaseException as exc:
        guarded(call.finish, None, exc)
        raise
    guarded(call.finish, result)
    return result


def _measure(telemetry: Any, row: Target, wrapped, instance, args, kwargs,
             run: Callable[[], Any]) -> Any:
    """``run()`` measured as ``row``. ``start`` hands the call over in ``started``
    before it changes anything, and the ``finally`` releases it (a no-op when
    ``finish`` completed), so an interrupt anywhere leaves nothing behind."""
    started: list = []
    try:
        call = guarded(telemetry.start, row, wrapped, instance, args, kwargs, started)
        if call is None:
            return run()
        return _measured(call, run)
    finally:
        if started:
            guarded(started[0].release)


async def _measure_async(telemetry: Any, row: Target, wrapped, instance, args, kwargs,
                         run: Callable[[], Any]) -> Any:
    started: list = []
    try:
        call = guarded(telemetry.start, row, wrapped, instance, args, kwargs, started)
        if call is None:
            return await run()
        return await _measured_async(call, run)
    finally:
        if started:
            guarded(started[0].release)


def make_wrapper(target: Target, session: Any) -> Callable:
    """A wrapt wrapper that measures ``target`` while ``session`` is active.

    The wrapped call's return value and exception object pass through
    untouched; ``Telemetry.start`` / ``Call.finish`` swallow their own errors,
    and an interrupt (Ctrl-C) anywhere in our code still leaves span, context
    and gauge restored. A child row with ``standalone`` also opens its
    operation's span when it is called outside any operation.
    """
    telemetry = session.telemetry
    outer = target.standalone_row()

    def wrapper(wrapped, instance, args, kwargs):
        if bypass(session):
            return wrapped(*args, **kwargs)

        def step():
            return _measure(telemetry, target, wrapped, instance, args, kwargs,
                            lambda: wrapped(*args, **kwargs))

        if outer is not None and current_operation() is None:
            return _measure(telemetry, outer, wrapped, instance, args, kwargs, step)
        return step()

    async def async_wrapper(wrapped, instance, args, kwargs):
        if bypass(session):
            return await wrapped(*args, **kwargs)

        async def step():
            return await _measure_async(telemetry, target, wrapped, instance, args, kwargs,
                                        lambda: wrapped(*args, **kwargs))

        if outer is not None and current_operation() is None:
            return await _measure_async(telemetry, outer, wrapped, instance, args, kwargs, step)
        return await step()

    def choose(original: Any) -> Callable:
        func = getattr(original, "__func__", original)
        return async_wrapper if inspect.iscoroutinefunction(func) else wrapper

    return choose
