"""The one wrapper every target row gets (sync and async flavours)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .targets import Target


def make_wrapper(target: Target, session: Any) -> Callable:
    """A wrapt wrapper that measures ``target`` while ``session`` is active.

    The wrapped call's return value and exception object pass through
    untouched; ``Telemetry.start`` / ``Call.finish`` swallow their own errors.
    """
    telemetry = session.telemetry

    def wrapper(wrapped, instance, args, kwargs):
        if not session.active or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        call = telemetry.start(target, wrapped, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish(result)
        return result

    async def async_wrapper(wrapped, instance, args, kwargs):
        if not session.active or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        call = telemetry.start(target, wrapped, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish(result)
        return result

    def choose(original: Any) -> Callable:
        func = getattr(original, "__func__", original)
        return async_wrapper if inspect.iscoroutinefunction(func) else wrapper

    return choose
