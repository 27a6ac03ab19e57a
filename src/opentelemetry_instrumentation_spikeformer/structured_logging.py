"""Structured logs that join up with traces: ``setup_logging``,
``StructuredFormatter`` and ``NeuromorphicLogger``, with the API of the
observability design, done the OTel way.

``setup_logging()`` gives one logger (root by default) up to three handlers,
all marked as ours so that a second call replaces them instead of adding more:

- a console handler: JSON lines (``StructuredFormatter``) or text with the
  trace id (``TextFormatter``);
- with ``include_metrics``, a handler that counts records in the
  ``spikeformer.log.records`` counter by level and bounded ``event_type``;
- with ``otel_bridge``, the OpenTelemetry logs bridge of
  ``opentelemetry-instrumentation-logging``: its ``LoggingInstrumentor``
  installs its handler on the root logger (nothing to do when the launcher
  already did), or, for an explicit ``logger_provider``, its ``LoggingHandler``
  on this logger.

The plugin never configures logging by itself: call ``setup_logging()``.
Nothing here imports torch or an SNN library.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any, Mapping

from opentelemetry import trace

from .core import attributes as a
from .core.hardware import hardware_label
from .core.metrics import MetricSpec
from .core.scope import get_meter
from .core.settings import load_settings

__all__ = [
    "NeuromorphicLogger",
    "StructuredFormatter",
    "TextFormatter",
    "setup_logging",
    "teardown_logging",
]

_LOG = logging.getLogger(__name__)

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}
# Set by opentelemetry-instrumentation-logging's record factory: shown as
# trace_id / span_id, not repeated as extra fields.
_OTEL_INJECTED = frozenset({"otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName"})
_BASE_KEYS = ("timestamp", "level", "logger", "message", "module", "function", "line",
              "trace_id", "span_id", "exception", "stack")
_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
_KNOWN_EVENTS = frozenset(a.EVENT_TYPES)
M_LOG_LEVEL = "level"

LOG_RECORDS = MetricSpec(
    "spikeformer.log.records", "counter", "{record}", "spikeformer_log_records_total",
    (M_LOG_LEVEL, a.EVENT_TYPE),
    "Log records seen by setup_logging(include_metrics=True), by level and event_type "
    "(unknown event types count as other, records without one as none)",
)
LOGGING_METRICS = (LOG_RECORDS,)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's ``extra`` fields: everything not on a plain LogRecord."""
    return {key: value for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and key not in _OTEL_INJECTED}


def trace_ids(record: logging.LogRecord) -> dict[str, str]:
    """``trace_id`` / ``span_id`` (lowercase hex) of the span current when the
    record was made; empty outside a valid span."""
    injected = getattr(record, "otelTraceID", "0")
    if isinstance(injected, str) and injected.strip("0"):
        return {"trace_id": injected, "span_id": str(getattr(record, "otelSpanID", "0"))}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="microseconds")


def _jsonable(value: Any) -> str:
    """``json.dumps`` fallback: anything else becomes its ``str``."""
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the line
        return f"<unprintable {type(value).__name__}>"


class StructuredFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO-8601), level, logger,
    message, module, function, line, trace_id/span_id when a span is current,
    every ``extra`` field (a field named like a base key gets an ``extra_``
    prefix), exception and stack as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        entry.update(trace_ids(record))
        for key, value in extra_fields(record).items():
            entry["extra_" + key if key in _BASE_KEYS else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=_jsonable, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For development: ``time LEVEL logger: message key=value ... trace_id=...``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{_timestamp(record)} {record.levelname:<8} {record.name}: "
                 f"{record.getMessage()}"]
        fields = {**extra_fields(record), **trace_ids(record)}
        parts.extend(f"{key}={_jsonable(value)}" for key, value in fields.items())
        text = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


_FORMATTERS = {"json": StructuredFormatter, "text": TextFormatter, "none": None}


class _ConsoleHandler(logging.StreamHandler):
    """Our console handler (a class of its own so that set-up can find it)."""


class _CountingHandler(logging.Handler):
    """Counts records by level and bounded event_type (``LOG_RECORDS``)."""

    def __init__(self, counter) -> None:
        super().__init__(logging.NOTSET)
        self._counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, a.EVENT_TYPE, None)
        if event is None:
            event = a.UNSPECIFIED
        elif event not in _KNOWN_EVENTS:
            event = a.OTHER
        level = record.levelname if record.levelname in _LEVELS else a.OTHER
        try:
            self._counter.add(1, {M_LOG_LEVEL: level, a.EVENT_TYPE: event})
        except Exception:
            self.handleError(record)


def _instrumentation_logging():
    """opentelemetry-instrumentation-logging's (instrumentor, handler class), or None."""
    try:
        from opentelemetry.instrumentation.logging import LoggingInstrumentor
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
    except ImportError:
        return None
    return LoggingInstrumentor, LoggingHandler


_bridged_root = False  # setup_logging instrumented logging itself (undo on teardown)


def _bridge(target: logging.Logger, logger_provider: Any) -> logging.Handler | None:
    """Connect ``target`` to the OTel logs pipeline; a handler to add, or None."""
    global _bridged_root
    found = _instrumentation_logging()
    if found is None:
        _LOG.warning("spikeformer: opentelemetry-instrumentation-logging is not installed "
                     "(pip install 'opentelemetry-instrumentation-spikeformer[sdk]'); logs "
                     "are not sent over OTLP")
        return None
    instrumentor, handler_class = found
    if logger_provider is not None:
        return handler_class(logger_provider=logger_provider)
    if not instrumentor().is_instrumented_by_opentelemetry:
        instrumentor().instrument()  # its handler, on the root logger, global provider
        _bridged_root = True
    return None


_OURS = "_spikeformer_handler"
_SAVED_LEVELS: dict[str, int] = {}


def _resolve(logger: logging.Logger | str | None) -> logging.Logger:
    return logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)


def teardown_logging(logger: logging.Logger | str | None = None) -> None:
    """Remove what ``setup_logging`` added to ``logger`` and restore its level."""
    global _bridged_root
    target = _resolve(logger)
    found = _instrumentation_logging()
    if _bridged_root and found is not None and target is logging.getLogger():
        found[0]().uninstrument()
        _bridged_root = False
    for handler in [h for h in target.handlers if getattr(h, _OURS, False)]:
        target.removeHandler(handler)
        if not isinstance(handler, _ConsoleHandler):  # never close the user's stream
            handler.close()
    if target.name in _SAVED_LEVELS:
        target.setLevel(_SAVED_LEVELS.pop(target.name))


def setup_logging(
    level: int | str | None = None,
    format: str | None = None,  # noqa: A002 - the design's keyword
    include_metrics: bool = True,
    logger: logging.Logger | str | None = None,
    stream: IO[str] | None = None,
    *,
    otel_bridge: bool = True,
    logger_provider: Any = None,
    meter_provider: Any = None,
) -> logging.Logger:
    """Configure ``logger`` (root by default) for structured logs; returns it.

    ``level`` and ``format`` default to ``OTEL_PYTHON_SPIKEFORMER_LOG_LEVEL`` /
    ``_LOG_FORMAT`` (``INFO``, ``json``). ``format``: ``"json"`` (one object
    per line), ``"text"``, or ``"none"`` (no console handler).
    ``include_metrics``: count records in ``spikeformer.log.records`` (by level
    and event_type) on ``meter_provider`` or the global one. ``otel_bridge``:
    send the same records over OTLP through opentelemetry-instrumentation-logging
    (to ``logger_provider`` when given, else the global one). Calling again
    replaces our handlers.
    """
    if level is None or format is None:
        settings = load_settings()
        level = settings.log_level if level is None else level
        format = settings.log_format if format is None else format
    if format not in _FORMATTERS:
        raise ValueError(f"format must be one of {sorted(_FORMATTERS)}, not {format!r}")
    if isinstance(level, str) and not isinstance(logging.getLevelName(level.upper()), int):
        raise ValueError(f"unknown logging level {level!r}")
    level = level.upper() if isinstance(level, str) else level
    target = _resolve(logger)
    teardown_logging(target)
    _SAVED_LEVELS[target.name] = target.level
    target.setLevel(level)

    handlers: list[logging.Handler] = []
    formatter = _FORMATTERS[format]
    if formatter is not None:
        console = _ConsoleHandler(sys.stderr if stream is None else stream)
        console.setFormatter(formatter())
        handlers.append(console)
    if include_metrics:
        handlers.append(_CountingHandler(LOG_RECORDS.create(get_meter(meter_provider))))
    if otel_bridge:
        bridge = _bridge(target, logger_provider)
        if bridge is not None:
            handlers.append(bridge)
    for handler in handlers:
        setattr(handler, _OURS, True)
        target.addHandler(handler)
    return target


class NeuromorphicLogger:
    """The design's event logger, emitting the same event shapes as the
    instrumentation's own events (logger ``spikeformer.events``), for events
    only your code knows about. Module, function and line are the caller's."""

    def __init__(self, logger: logging.Logger | str | None = None) -> None:
        self.logger = _resolve(logger or a.EVENTS_LOGGER)

    @staticmethod
    def _model_fields(model_info: Mapping[str, Any] | None) -> dict[str, Any]:
        info = model_info or {}
        params = info.get("parameter_count")
        fields = {"model_id": info.get("id"),
                  a.M_MODEL_TYPE: info.get("type") or a.UNSPECIFIED,
                  a.M_MODEL_SIZE: a.model_size_class(
                      params if isinstance(params, int) else None)}
        if isinstance(params, int):
            fields["model_parameters"] = params
        return {k: v for k, v in fields.items() if v is not None}

    def log_conversion_start(self, model_info: Mapping[str, Any] | None,
                             hardware_target: Any = None) -> None:
        """``model_info``: ``id``, ``type``, ``parameter_count`` (all optional)."""
        self.logger.info("Starting model conversion", stacklevel=2, extra={
            a.EVENT_TYPE: "conversion_start", **self._model_fields(model_info),
            a.M_HARDWARE_TARGET: hardware_label(hardware_target)})

    def log_conversion_end(self, model_info: Mapping[str, Any] | None,
                           hardware_target: Any = None, duration_s: float | None = None,
                           error: BaseException | None = None) -> None:
        """``conversion_end``, or ``conversion_error`` at ERROR when ``error`` is given."""
        fields = {**self._model_fields(model_info),
                  a.M_HARDWARE_TARGET: hardware_label(hardware_target),
                  "success": error is None}
        if duration_s is not None:
            fields["duration_s"] = duration_s
        if error is None:
            self.logger.info("Model conversion finished", stacklevel=2,
                             extra={a.EVENT_TYPE: "conversion_end", **fields})
            return
        self.logger.error("Model conversion failed: %s", type(error).__name__, stacklevel=2,
                          extra={a.EVENT_TYPE: "conversion_error", **fields,
                                 "error_type": type(error).__qualname__,
                                 "error_message": str(error)[:500]})

    def log_spike_activity(self, layer_name: str, spike_count: int | float,
                           timestep: int | float) -> None:
        """DEBUG: spikes of one layer over ``timestep`` timesteps."""
        self.logger.debug("Spike activity recorded", stacklevel=2, extra={
            a.EVENT_TYPE: "spike_activity", "layer_name": layer_name,
            "spike_count": spike_count, "timestep": timestep,
            "spike_rate": spike_count / timestep if timestep > 0 else 0.0})

    def log_hardware_error(self, hardware_type: str, error_details: Any) -> None:
        """ERROR ``hardware_error`` (counted in spikeformer.log.records for alerts)."""
        fields = {a.EVENT_TYPE: "hardware_error", "hardware_type": hardware_type,
                  "error_message": str(error_details)[:500], "requires_attention": True}
        if isinstance(error_details, BaseException):
            fields["error_type"] = type(error_details).__qualname__
        self.logger.error("Hardware error encountered", stacklevel=2, extra=fields)
