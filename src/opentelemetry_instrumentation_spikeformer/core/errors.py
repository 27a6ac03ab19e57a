"""Report a failure in our own code once, never raise it into the user's call."""

from __future__ import annotations

import logging
from typing import Any, Callable

_LOG = logging.getLogger("opentelemetry_instrumentation_spikeformer")
_warned: set[str] = set()


def log_internal_error(where: str) -> None:
    """Log our own failure with its traceback once per place, then at debug level."""
    level = logging.DEBUG if where in _warned else logging.WARNING
    _warned.add(where)
    _LOG.log(level, "spikeformer instrumentation error in %s (the instrumented call is "
             "unaffected)", where, exc_info=True)


def quietly(where: str, step: Callable[..., Any], *args: Any) -> Any:
    """``step(*args)``, or ``None`` when it fails (reported once per ``where``)."""
    try:
        return step(*args)
    except Exception:
        log_internal_error(where)
        return None
