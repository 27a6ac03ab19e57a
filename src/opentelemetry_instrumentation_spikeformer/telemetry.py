"""Spans and metrics for one wrapped call.

``Telemetry.start`` and ``Call.finish`` never raise: any failure in our code, the
SDK or an exporter is logged once per kind and swallowed, so the user's call
returns (or raises) exactly what it would without us.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv.attributes.code_attributes import CODE_FUNCTION_NAME
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import model_info, semconv
from .config import Settings
from .targets import CALIBRATION, OP, Source, Target

try:  # peak RSS; absent on Windows
    import resource
except ImportError:  # pragma: no cover
    resource = None

_LOG = logging.getLogger(__name__)
# Conversion / compilation start and end events, for structured logs (the
# seeds' NeuromorphicLogger). Records carry ``event_type`` and bounded fields.
EVENTS = logging.getLogger(semconv.EVENTS_LOGGER)

# Operation of the innermost instrumented call in this context: a nested call of
# the same operation (sinabs.to_nir -> nirtorch.extract_nir_graph) gets a span
# but is not counted twice in the metrics.
_CURRENT_OP: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "spikeformer_current_op", default=None
)
_COMPILER_FAMILY = (semconv.COMPILATION, semconv.EXPORT, semconv.DEPLOYMENT)
_SHORT_OP = {semconv.COMPILATION: "compile", semconv.EXPORT: "export",
             semconv.DEPLOYMENT: "deploy"}

_warned: set[str] = set()


def log_internal_error(where: str) -> None:
    """Log our own failure with traceback once per place, then at debug level."""
    level = logging.DEBUG if where in _warned else logging.WARNING
    _warned.add(where)
    _LOG.log(level, "spikeformer instrumentation error in %s (the instrumented call is "
             "unaffected)", where, exc_info=True)


def _peak_rss_bytes() -> int | None:
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Instruments:
    """The core instruments, created once per meter."""

    def __init__(self, meter) -> None:
        def make(spec: semconv.MetricSpec, **kw):
            factory = {
                "counter": meter.create_counter,
                "updowncounter": meter.create_up_down_counter,
                "histogram": meter.create_histogram,
            }[spec.kind]
            return factory(spec.name, unit=spec.unit, description=spec.description, **kw)

        seconds = {"explicit_bucket_boundaries_advisory": list(semconv.DURATION_BUCKETS_S)}
        self.conversions = make(semconv.CONVERSIONS)
        self.conversion_errors = make(semconv.CONVERSION_ERRORS)
        self.conversion_duration = make(semconv.CONVERSION_DURATION, **seconds)
        self.active_conversions = make(semconv.ACTIVE_CONVERSIONS)
        self.compilations = make(semconv.COMPILATIONS)
        self.compilation_errors = make(semconv.COMPILATION_ERRORS)
        self.compilation_duration = make(semconv.COMPILATION_DURATION, **seconds)
        self.compilation_memory = make(
            semconv.COMPILATION_MEMORY,
            explicit_bucket_boundaries_advisory=list(semconv.MEMORY_BUCKETS_BY),
        )


@dataclass
class _Compiled:
    """A row with its sources parsed once."""

    target: Target
    model: Source
    hardware: Source
    timesteps: Source
    samples: Source
    layer: Source
    recipe: Source

    @classmethod
    def of(cls, target: Target) -> "_Compiled":
        return cls(target, *(Source.parse(getattr(target, f)) for f in
                             ("model", "hardware", "timesteps", "samples", "layer", "recipe")))


_SIGNATURES: dict[Any, inspect.Signature | None] = {}


def _bind(wrapped: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Parameters by name, defaults applied; empty when the signature is opaque."""
    key = getattr(wrapped, "__func__", wrapped)
    sig = _SIGNATURES.get(key, False)
    if sig is False:
        try:
            sig = inspect.signature(wrapped)
        except (TypeError, ValueError):
            sig = None
        _SIGNATURES[key] = sig
    if sig is None:
        return dict(kwargs)
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return dict(kwargs)
    bound.apply_defaults()
    return bound.arguments


def _qualified_name(wrapped: Callable, target: Target) -> str:
    """Where the code really lives (not the re-export or base class the row names)."""
    func = getattr(wrapped, "__func__", wrapped)
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return target.function_name


@dataclass
class Call:
    """One measured call in flight."""

    telemetry: "Telemetry"
    row: _Compiled
    span: Any
    token: Any
    op_token: Any
    start: float
    metric_attrs: dict[str, Any] = field(default_factory=dict)
    counted: bool = False
    active_added: bool = False
    peak_rss: int | None = None
    forward_hooks: list[Any] = field(default_factory=list)
    samples: int = 0
    batches: int = 0

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        """End the span and record metrics; never raises."""
        tel = self.telemetry
        duration = time.perf_counter() - self.start
        for handle in self.forward_hooks:
            try:
                handle.remove()
            except Exception:
                log_internal_error("calibration hook removal")
        if self.counted:
            try:
                tel.record(self, duration, result, error)
            except Exception:
                log_internal_error("metric recording")
            try:
                _log_end(self, duration, error)
            except Exception:
                log_internal_error("end event")
        try:
            self._end_span(result, error)
        except Exception:
            log_internal_error("span end")
        finally:
            for reset in (lambda: _CURRENT_OP.reset(self.op_token),
                          lambda: otel_context.detach(self.token)):
                try:
                    reset()
                except Exception:
                    log_internal_error("context detach")

    def _end_span(self, result: Any, error: BaseException | None) -> None:
        span = self.span
        if span.is_recording():
            target = self.row.target
            if target.role == CALIBRATION and self.batches:
                span.set_attribute(semconv.CALIBRATION_SAMPLES, self.samples)
                span.set_attribute(semconv.CALIBRATION_BATCHES, self.batches)
            if target.role == OP:
                span.set_attribute(semconv.SUCCESS, error is None)
            if error is None and target.operation == semconv.CONVERSION:
                spiking = model_info.spiking_layer_count(model_info.unwrap_model(result))
                if spiking is not None:
                    span.set_attribute(semconv.SPIKING_LAYERS, spiking)
            if error is not None:
                span.record_exception(error)
                span.set_attribute(ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()


def _event(call: Call, phase: str) -> dict[str, Any]:
    target = call.row.target
    kind = "conversion" if target.operation == semconv.CONVERSION else "compilation"
    # ``operation`` is the span's (conversion, compilation, export, deployment),
    # not the compiler metrics' short label (compile, export, deploy).
    return {semconv.EVENT_TYPE: f"{kind}_{phase}", **call.metric_attrs,
            "framework": target.framework, "operation": target.operation}


def _log_end(call: Call, duration: float, error: BaseException | None) -> None:
    if error is None:
        if EVENTS.isEnabledFor(logging.INFO):
            EVENTS.info("%s finished in %.3f s", call.row.target.span_name, duration,
                        extra={**_event(call, "end"), "duration_s": duration, "success": True})
        return
    fields = {**_event(call, "error"), "duration_s": duration, "success": False,
              "error_type": type(error).__qualname__, "error_message": str(error)[:500]}
    EVENTS.error("%s failed: %s", call.row.target.span_name, type(error).__name__, extra=fields)


class Telemetry:
    """Tracer, instruments and settings shared by every wrapper of one session."""

    def __init__(self, tracer, meter, settings: Settings) -> None:
        self.tracer = tracer
        self.settings = settings
        self.instruments = Instruments(meter)
        self._rows: dict[Target, _Compiled] = {}
        # Called with (result, target, call) after a successful conversion:
        # the spike monitor attaches itself here.
        self.on_converted: list[Callable[[Any, Target, Call], None]] = []

    def compiled(self, target: Target) -> _Compiled:
        row = self._rows.get(target)
        if row is None:
            row = self._rows[target] = _Compiled.of(target)
        return row

    # -- start ---------------------------------------------------------------
    def start(self, target: Target, wrapped: Callable, instance: Any, args: tuple,
              kwargs: dict) -> Call | None:
        """Open the span (and count the call); ``None`` means run the call bare."""
        try:
            return self._start(target, wrapped, instance, args, kwargs)
        except Exception:
            log_internal_error(f"start of {target.function_name}")
            return None

    def _start(self, target, wrapped, instance, args, kwargs) -> Call | None:
        parent_op = _CURRENT_OP.get()
        if target.role != OP:
            if parent_op is None or not self.settings.layer_spans:
                return None
        row = self.compiled(target)
        bound = _bind(wrapped, args, kwargs)
        attrs, metric_attrs = self._attributes(row, bound, args, instance)
        attrs[CODE_FUNCTION_NAME] = _qualified_name(wrapped, target)
        span = self.tracer.start_span(target.span_name, kind=SpanKind.INTERNAL, attributes=attrs)
        op = target.operation if target.role == OP else parent_op
        try:
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception:
            span.end()
            raise
        call = Call(self, row, span, token, _CURRENT_OP.set(op), time.perf_counter(),
                    metric_attrs)
        # From here on the context is attached: failures are logged, the call
        # goes on and finish() restores the context.
        call.counted = target.role == OP and parent_op != target.operation
        try:
            if call.counted:
                if target.operation == semconv.CONVERSION:
                    self.instruments.active_conversions.add(
                        1, {semconv.M_FRAMEWORK: target.framework})
                    call.active_added = True
                elif self.settings.capture_memory:
                    call.peak_rss = _peak_rss_bytes()
            if target.role == CALIBRATION:
                self._count_calibration(call, bound, args, instance)
            if call.counted and EVENTS.isEnabledFor(logging.INFO):
                EVENTS.info("%s started", target.span_name, extra=_event(call, "start"))
        except Exception:
            log_internal_error(f"start of {target.function_name}")
        return call

    def _attributes(self, row: _Compiled, bound, args, instance):
        target = row.target
        attrs: dict[str, Any] = {semconv.FRAMEWORK: target.framework}
        if target.role == OP:
            attrs[semconv.OPERATION] = target.operation
        model = row.model.read(bound, args, instance)
        params = None
        if model is not None:
            model = model_info.unwrap_model(model)
            attrs[semconv.MODEL_TYPE] = model_info.model_type(model)
            described = model_info.describe(model)
            if described is not None:
                params, layers = described
                attrs[semconv.MODEL_PARAMETERS] = params
                attrs[semconv.MODEL_SIZE] = semconv.model_size_class(params)
                attrs[semconv.MODEL_LAYERS] = layers
        hardware = semconv.hardware_label(
            target.hardware_value or row.hardware.read(bound, args, instance))
        if target.role == OP:
            attrs[semconv.HARDWARE_TARGET] = hardware
        for key, source in ((semconv.TIMESTEPS, row.timesteps), (semconv.RECIPE, row.recipe),
                            (semconv.LAYER_NAME, row.layer)):
            value = source.read(bound, args, instance)
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                attrs[key] = value
        if target.direction:
            attrs[semconv.EXPORT_DIRECTION] = target.direction
        if target.role == CALIBRATION:
            samples = row.samples.read(bound, args, instance)
            if isinstance(samples, int):
                attrs[semconv.CALIBRATION_SAMPLES] = samples
        metric_attrs = {}
        if target.role == OP:
            model_type = attrs.get(semconv.MODEL_TYPE, semconv.UNSPECIFIED)
            if target.operation == semconv.CONVERSION:
                metric_attrs = {semconv.M_MODEL_TYPE: model_type,
                                semconv.M_HARDWARE_TARGET: hardware,
                                semconv.M_FRAMEWORK: target.framework,
                                semconv.M_MODEL_SIZE: semconv.model_size_class(params)}
            else:
                metric_attrs = {semconv.M_MODEL_TYPE: model_type,
                                semconv.M_TARGET_HARDWARE: hardware,
                                semconv.M_FRAMEWORK: target.framework,
                                semconv.M_OPERATION: _SHORT_OP[target.operation]}
        return attrs, metric_attrs

    @staticmethod
    def _count_calibration(call: Call, bound, args, instance) -> None:
        """Count samples seen by the calibrated model with a forward pre-hook
        (reads the batch dimension: shape metadata, no device sync)."""
        model = bound.get("fx_model") or bound.get("model")
        register = getattr(model, "register_forward_pre_hook", None)
        if register is None:
            return

        def count(_module, inputs):
            first = inputs[0] if inputs else None
            shape = getattr(first, "shape", None)
            call.batches += 1
            call.samples += int(shape[0]) if shape else 1

        call.forward_hooks.append(register(count))

    # -- finish ----------------------------------------------------------------
    def record(self, call: Call, duration: float, result: Any, error: BaseException | None):
        inst = self.instruments
        target = call.row.target
        attrs = call.metric_attrs
        failed = {**attrs, ERROR_TYPE: type(error).__qualname__} if error is not None else None
        if target.operation == semconv.CONVERSION:
            if call.active_added:
                inst.active_conversions.add(-1, {semconv.M_FRAMEWORK: target.framework})
            counted = {k: attrs[k] for k in (semconv.M_MODEL_TYPE, semconv.M_HARDWARE_TARGET,
                                             semconv.M_FRAMEWORK)}
            inst.conversions.add(1, counted)
            if failed is not None:
                inst.conversion_errors.add(1, {**counted, ERROR_TYPE: failed[ERROR_TYPE]})
            inst.conversion_duration.record(duration, {
                semconv.M_MODEL_SIZE: attrs[semconv.M_MODEL_SIZE],
                semconv.M_FRAMEWORK: target.framework})
            if error is None:
                for callback in list(self.on_converted):
                    try:
                        callback(result, target, call)
                    except Exception:
                        log_internal_error("post-conversion callback")
            return
        inst.compilations.add(1, attrs)
        if failed is not None:
            inst.compilation_errors.add(1, failed)
        short = {k: attrs[k] for k in (semconv.M_TARGET_HARDWARE, semconv.M_FRAMEWORK,
                                       semconv.M_OPERATION)}
        inst.compilation_duration.record(duration, short)
        if call.peak_rss is not None:
            after = _peak_rss_bytes()
            if after is not None:
                growth = max(0, after - call.peak_rss)
                inst.compilation_memory.record(growth, short)
                if call.span.is_recording():
                    call.span.set_attribute(semconv.MEMORY_GROWTH, growth)
