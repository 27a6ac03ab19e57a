"""Flush spans and metrics when the process is stopped with SIGTERM.

When one rank of a torchrun job fails, torchrun stops the others with SIGTERM
(SIGKILL about 30 s later). Python's default action ends the process without
``atexit``, so the SDK's final export never runs: those ranks lose their
metrics since the last periodic export and their queued spans, exactly in the
job one wants to understand. With ``OTEL_PYTHON_SPIKEFORMER_FLUSH_ON_SIGTERM=true``
the instrumentor installs a handler that flushes the tracer, meter and logger
providers, then restores the default action and re-sends SIGTERM, so the
process still dies by SIGTERM (exit status -15, what torchrun expects).

Off by default: a Python handler runs only between bytecodes, so a process
stuck in a long C call (a collective waiting on a dead peer) dies when that
call returns or at torchrun's SIGKILL instead of at once, and a handler is a
change of the program's signal disposition. It is installed only in the main
thread of a process that is not a helper (``core.process``), and only while
SIGTERM has its default action: a handler of the program always wins. The
flush runs on a separate thread joined with a timeout, because the signal may
have interrupted the main thread inside an SDK lock. A fork child that
inherits the handler does not flush the parent's providers: it just dies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Callable, Iterable

from ..core.process import is_helper_process

_LOG = logging.getLogger(__name__)
FLUSH_TIMEOUT_S = 5.0


def _flush(providers: Iterable[Any], timeout_s: float) -> None:
    for provider in providers:
        flush = getattr(provider, "force_flush", None)
        if flush is None:
            continue
        try:
            flush(int(timeout_s * 1000))
        except Exception as exc:  # an exporter's failure must not keep the process alive
            _LOG.debug("flush on SIGTERM failed: %s: %s", type(exc).__name__, exc)


def providers(tracer_provider: Any = None, meter_provider: Any = None) -> list[Any]:
    """The given tracer and meter providers (else the global ones, as they are
    now) and the global logger provider."""
    from opentelemetry import _logs, metrics, trace

    return [tracer_provider or trace.get_tracer_provider(),
            meter_provider or metrics.get_meter_provider(), _logs.get_logger_provider()]


def install(tracer_provider: Any = None, meter_provider: Any = None,
            timeout_s: float = FLUSH_TIMEOUT_S) -> Callable[[], None] | None:
    """Install the handler where allowed (see the module doc); returns a
    callable that removes it again, or None when it was not installed."""
    if threading.current_thread() is not threading.main_thread() or is_helper_process():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    owner = os.getpid()

    def handler(signum: int, _frame: Any) -> None:
        if os.getpid() == owner:
            worker = threading.Thread(target=_flush,
                                      args=(providers(tracer_provider, meter_provider), timeout_s),
                                      name="spikeformer-sigterm-flush", daemon=True)
            worker.start()
            worker.join(timeout_s + 1.0)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, handler)

    def uninstall() -> None:
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return uninstall
