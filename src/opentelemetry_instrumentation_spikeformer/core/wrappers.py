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
    """Run one step of our own code with re-entrancy suppressed."""
    token = _IN_TELEMETRY.set(True)
    try:
        return step(*args)
    finally:
        _IN_TELEMETRY.reset(token)


def make_wrapper(target: Target, session: Any) -> Callable:
    """A wrapt wrapper that measures ``target`` while ``session`` is active.

    The wrapped call's return value and exception object pass through
    untouched; ``Telemetry.start`` / ``Call.finish`` swallow their own errors.
    A child row with ``standalone`` also opens its operation's span when it is
    called outside any operation.
    """
    telemetry = session.telemetry
    outer = target.standalone_row()

    def measured(row, wrapped, instance, args, kwargs, run):
        call = guarded(telemetry.start, row, wrapped, instance, args, kwargs)
        if call is None:
            return run()
        try:
            result = run()
        except BaseException as exc:
            guarded(call.finish, None, exc)
            raise
        guarded(call.finish, result)
        return result

    def wrapper(wrapped, instance, args, kwargs):
        if bypass(session):
            return wrapped(*args, **kwargs)

        def step():
            return measured(target, wrapped, instance, args, kwargs,
                            lambda: wrapped(*args, **kwargs))

        if outer is not None and current_operation() is None:
            return measured(outer, wrapped, instance, args, kwargs, step)
        return step()

    async def measured_async(row, wrapped, instance, args, kwargs, run):
        call = guarded(telemetry.start, row, wrapped, instance, args, kwargs)
        if call is None:
            return await run()
        try:
            result = await run()
        except BaseException as exc:
            guarded(call.finish, None, exc)
            raise
        guarded(call.finish, result)
        return result

    async def async_wrapper(wrapped, instance, args, kwargs):
        if bypass(session):
            return await wrapped(*args, **kwargs)

        async def step():
            return await measured_async(target, wrapped, instance, args, kwargs,
                                        lambda: wrapped(*args, **kwargs))

        if outer is not None and current_operation() is None:
            return await measured_async(outer, wrapped, instance, args, kwargs, step)
        return await step()

    def choose(original: Any) -> Callable:
        func = getattr(original, "__func__", original)
        return async_wrapper if inspect.iscoroutinefunction(func) else wrapper

    return choose
