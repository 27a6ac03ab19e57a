"""Spans and metrics for one wrapped call.

``Telemetry.start`` and ``Call.finish`` never raise an ``Exception``: any
failure in our code, the SDK or an exporter is logged once per kind and
swallowed, so the user's call returns (or raises) exactly what it would
without us. An interrupt (``KeyboardInterrupt``) inside our code propagates,
but only after the span, the context and the in-progress gauge are restored.
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

from . import attributes as a
from . import metrics as m
from . import model_info
from .errors import log_internal_error
from .hardware import hardware_label
from .in_flight import in_flight_for
from .labels import BoundedLabels
from .scope import warn_if_no_sdk
from .settings import Settings
from .snapshots import Snapshot, snapshot_gauges
from .targets import CALIBRATION, OP, Source, Target

try:  # peak RSS; absent on Windows
    import resource
except ImportError:  # pragma: no cover
    resource = None

# Conversion / compilation start and end events, for structured logs. Records
# carry ``event_type`` and bounded fields (see structured_logging).
EVENTS = logging.getLogger(a.EVENTS_LOGGER)

# Operation of the innermost instrumented call in this context: a nested call of
# the same operation (sinabs.to_nir -> nirtorch.extract_nir_graph) gets a span
# but is not counted twice in the metrics.
_CURRENT_OP: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "spikeformer_current_op", default=None
)
_SHORT_OP = {a.COMPILATION: "compile", a.EXPORT: "export", a.DEPLOYMENT: "deploy"}


def current_operation() -> str | None:
    """Operation of the innermost instrumented call running in this context."""
    return _CURRENT_OP.get()


def _peak_rss_bytes() -> int | None:
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _quietly(step: Callable[[], Any], where: str) -> None:
    try:
        step()
    except Exception:
        log_internal_error(where)


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


@dataclass(eq=False)
class Call:
    """One measured call in flight."""

    telemetry: "Telemetry"
    row: _Compiled
    metric_attrs: dict[str, Any] = field(default_factory=dict)
    span: Any = None
    # The call's object and arguments by name, for row hooks; dropped when it finishes.
    instance: Any = None
    bound: dict[str, Any] = field(default_factory=dict)
    start: float = 0.0
    # What ``start`` changed, so that ``release`` can put it back.
    parent_context: Any = None  # the OTel context before ours was attached
    parent_op: str | None = None
    op_set: bool = False
    counted: bool = False
    released: bool = False
    model_class: str | None = None  # the source model's class name, unbounded (spans only)
    peak_rss: int | None = None
    forward_hooks: list[Any] = field(default_factory=list)
    samples: int = 0
    batches: int = 0

    @property
    def target(self) -> Target:
        return self.row.target

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        """Record metrics and end the span; never raises an ``Exception``."""
        try:
            duration = time.perf_counter() - self.start
            hooks = self.target.hooks
            if hooks is not None:
                _quietly(lambda: hooks.on_end(self, result, error),
                         f"{self.target.framework} end hook")
            if self.counted:
                _quietly(lambda: self.telemetry.record(self, duration, result, error),
                         "metric recording")
                _quietly(lambda: _log_end(self, duration, error), "end event")
            _quietly(lambda: self._describe_end(result, error), "span end")
        finally:
            self.instance, self.bound = None, {}
            self.release()

    def release(self) -> None:
        """Undo what ``start`` set up: hooks, in-flight entry, operation, context, span.

        Every step is idempotent, so an interrupt while undoing is answered by
        undoing again, then re-raised; calling it twice is harmless (the
        wrapper calls it once more on its way out, in case ``finish`` itself
        was interrupted).
        """
        if self.released:
            return
        try:
            self._undo()
        except BaseException:
            self._undo()
            raise

    def _undo(self) -> None:
        for handle in self.forward_hooks:
            _quietly(handle.remove, "calibration hook removal")  # a no-op when removed
        self.telemetry.in_flight.discard(self)
        if self.op_set:
            _CURRENT_OP.set(self.parent_op)
        if self.parent_context is not None:
            # Attaching the parent again is what detaching our token does, but
            # can be repeated (a token can be used once).
            _quietly(lambda: otel_context.attach(self.parent_context), "context detach")
        span = self.span
        if span is not None and getattr(span, "end_time", None) is None:
            self.span = None  # first: a span ended twice warns on stderr
            _quietly(span.end, "span end")
        self.released = True

    def _describe_end(self, result: Any, error: BaseException | None) -> None:
        span = self.span
        if not span.is_recording():
            return
        target = self.target
        if target.role == CALIBRATION and self.forward_hooks:  # counted: 0 when none ran
            span.set_attribute(a.CALIBRATION_SAMPLES, self.samples)
            span.set_attribute(a.CALIBRATION_BATCHES, self.batches)
        if target.role == OP:
            span.set_attribute(a.SUCCESS, error is None)
        if error is None and target.operation == a.CONVERSION:
            spiking = model_info.spiking_layer_count(model_info.unwrap_model(result))
            if spiking is not None:
                span.set_attribute(a.SPIKING_LAYERS, spiking)
        if error is not None:
            span.record_exception(error)
            span.set_attribute(ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _event(call: Call, phase: str) -> dict[str, Any]:
    target = call.target
    kind = "conversion" if target.operation == a.CONVERSION else "compilation"
    # ``operation`` is the span's (conversion, compilation, export, deployment),
    # not the compiler metrics' short label (compile, export, deploy).
    return {a.EVENT_TYPE: f"{kind}_{phase}", **call.metric_attrs,
            "framework": target.framework, "operation": target.operation}


def _log_end(call: Call, duration: float, error: BaseException | None) -> None:
    if error is None:
        if EVENTS.isEnabledFor(logging.INFO):
            EVENTS.info("%s finished in %.3f s", call.target.span_name, duration,
                        extra={**_event(call, "end"), "duration_s": duration, "success": True})
        return
    if EVENTS.isEnabledFor(logging.ERROR):
        fields = {**_event(call, "error"), "duration_s": duration, "success": False,
                  "error_type": type(error).__qualname__, "error_message": str(error)[:500]}
        EVENTS.error("%s failed: %s", call.target.span_name, type(error).__name__,
                     extra=fields)


class Telemetry:
    """Tracer, instruments and settings shared by every wrapper of one session."""

    def __init__(self, tracer: Any, meter: Any, settings: Settings,
                 global_providers: bool = False) -> None:
        self.tracer = tracer
        # Built on the global providers: at the first call, say so if no SDK is behind them.
        self._check_sdk = global_providers
        self.meter = meter
        self.settings = settings
        self.instruments = m.create_all(meter, m.CORE_METRICS)
        self.in_flight = in_flight_for(meter)
        self.in_flight.open(self)
        # model_type values of this meter's metrics, bounded (dynamic classes)
        self.model_types = m.once_per("model_types", meter, BoundedLabels)
        self._extension_instruments: dict[str, Any] = {}
        self.closed = False  # set by uninstrument(): snapshot gauges stop reporting
        self._rows: dict[Target, _Compiled] = {}
        # Called with (result, target, call) after a successful conversion:
        # the spike monitor attaches itself here.
        self.on_converted: list[Callable[[Any, Target, Call], None]] = []

    def instrument(self, spec: m.MetricSpec) -> Any:
        """An extension's synchronous instrument, created on first use."""
        found = self._extension_instruments.get(spec.name)
        if found is None:
            found = self._extension_instruments[spec.name] = spec.create(self.meter)
        return found

    def publish(self, group: str, snapshot: Snapshot) -> None:
        """Replace ``group``'s latest values of extension gauges (``core.snapshots``)."""
        snapshot_gauges(self.meter).publish(self, group, snapshot)

    def close(self) -> None:
        """The session ended: the in-flight and snapshot gauges stop reporting for it."""
        self.closed = True
        self.in_flight.close(self)

    def compiled(self, target: Target) -> _Compiled:
        row = self._rows.get(target)
        if row is None:
            row = self._rows[target] = _Compiled.of(target)
        return row

    # -- start ---------------------------------------------------------------
    def start(self, target: Target, wrapped: Callable, instance: Any, args: tuple,
              kwargs: dict, started: list) -> Call | None:
        """Open the span (and count the call); ``None`` means run the call bare.

        The call is appended to ``started`` before anything is changed, so the
        caller can release it whatever interrupts us after that.
        """
        try:
            return self._start(target, wrapped, instance, args, kwargs, started)
        except Exception:
            log_internal_error(f"start of {target.function_name}")
            return None

    def _start(self, target, wrapped, instance, args, kwargs, started) -> Call | None:
        if self._check_sdk:
            self._check_sdk = False
            warn_if_no_sdk()
        parent_op = _CURRENT_OP.get()
        if target.role != OP and (not self.settings.layer_spans
                                  or (parent_op is None and not target.root_span)):
            return None
        row = self.compiled(target)
        bound = _bind(wrapped, args, kwargs)
        if target.hooks is not None and not target.hooks.applies(bound):
            return None
        attrs, metric_attrs = self._attributes(row, bound, args, instance)
        attrs[CODE_FUNCTION_NAME] = _qualified_name(wrapped, target)
        call = Call(self, row, metric_attrs, instance=instance, bound=bound, parent_op=parent_op,
                    model_class=attrs.get(a.MODEL_TYPE))
        started.append(call)
        call.counted = target.role == OP and parent_op != target.operation
        try:
            # Each change is recorded on ``call`` as it is made, so that an
            # interrupt at any point leaves nothing that release() misses.
            call.span = self.tracer.start_span(target.span_name, kind=SpanKind.INTERNAL,
                                               attributes=attrs)
            call.parent_context = otel_context.get_current()
            otel_context.attach(trace.set_span_in_context(call.span, call.parent_context))
            call.op_set = True
            _CURRENT_OP.set(target.operation if target.role == OP else parent_op)
            call.start = time.perf_counter()
            # From here on the context is attached: failures are logged, the
            # call goes on and finish() restores the context.
            try:
                self._begin(call, bound, args, instance)
            except Exception:
                log_internal_error(f"start of {target.function_name}")
        except BaseException:
            call.release()  # an interrupt, or attach failed: leave nothing behind
            raise
        return call

    def _begin(self, call: Call, bound, args, instance) -> None:
        target = call.target
        if call.counted:
            if target.operation == a.CONVERSION:
                self.in_flight.add(call, target.framework)
            elif self.settings.capture_memory:
                call.peak_rss = _peak_rss_bytes()
        if target.role == CALIBRATION:
            self._count_calibration(call, bound)
        if target.hooks is not None:
            target.hooks.on_start(call, bound)
        if call.counted and EVENTS.isEnabledFor(logging.INFO):
            EVENTS.info("%s started", target.span_name, extra=_event(call, "start"))

    def _attributes(self, row: _Compiled, bound, args, instance):
        target = row.target
        attrs: dict[str, Any] = {a.FRAMEWORK: target.framework}
        if target.role == OP:
            attrs[a.OPERATION] = target.operation
        model = row.model.read(bound, args, instance)
        params = None
        if model is not None:
            model = model_info.unwrap_model(model)
            attrs[a.MODEL_TYPE] = model_info.model_type(model)
            described = model_info.describe(model)
            if described is not None:
                params, layers = described
                attrs[a.MODEL_PARAMETERS] = params
                attrs[a.MODEL_SIZE] = a.model_size_class(params)
                attrs[a.MODEL_LAYERS] = layers
        hardware = hardware_label(target.hardware_value or row.hardware.read(bound, args, instance))
        if target.role == OP:
            attrs[a.HARDWARE_TARGET] = hardware
        for key, source in ((a.TIMESTEPS, row.timesteps), (a.RECIPE, row.recipe),
                            (a.LAYER_NAME, row.layer)):
            value = source.read(bound, args, instance)
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                attrs[key] = value
        if target.direction:
            attrs[a.EXPORT_DIRECTION] = target.direction
        if target.role == CALIBRATION:
            samples = row.samples.read(bound, args, instance)
            if isinstance(samples, int):
                attrs[a.CALIBRATION_SAMPLES] = samples
        metric_attrs = {}
        if target.role == OP:
            model_type = self.model_types(attrs.get(a.MODEL_TYPE, a.UNSPECIFIED),
                                          self.settings.max_models)
            if target.operation == a.CONVERSION:
                metric_attrs = {a.M_MODEL_TYPE: model_type, a.M_HARDWARE_TARGET: hardware,
                                a.M_FRAMEWORK: target.framework,
                                a.M_MODEL_SIZE: a.model_size_class(params)}
            else:
                metric_attrs = {a.M_MODEL_TYPE: model_type, a.M_TARGET_HARDWARE: hardware,
                                a.M_FRAMEWORK: target.framework,
                                a.M_OPERATION: _SHORT_OP[target.operation]}
        return attrs, metric_attrs

    @staticmethod
    def _count_calibration(call: Call, bound) -> None:
        """Count samples seen by the calibrated model with a forward pre-hook
        (reads the batch dimension: shape metadata, no device sync)."""
        model = bound.get("fx_model") or bound.get("model")
        register = getattr(model, "register_forward_pre_hook", None)
        if register is None:
            return

        def count(_module, args, kwargs=None):  # (None: removed during the call)
            # the first argument with a shape, positional or keyword (input_ids=...)
            shape = next((s for s in (getattr(v, "shape", None) for v in (*args, *(kwargs or {}).values()))
                          if s), None)
            call.batches += 1
            call.samples += int(shape[0]) if shape else 1

        try:
            call.forward_hooks.append(register(count, with_kwargs=True))
        except TypeError:  # a module-like without torch's keyword hooks: not counted
            pass

    # -- finish ----------------------------------------------------------------
    def record(self, call: Call, duration: float, result: Any, error: BaseException | None):
        inst = self.instruments
        target = call.target
        attrs = call.metric_attrs
        if target.operation == a.CONVERSION:
            counted = {k: attrs[k] for k in (a.M_MODEL_TYPE, a.M_HARDWARE_TARGET, a.M_FRAMEWORK)}
            inst[m.CONVERSIONS.name].add(1, counted)
            if error is not None:
                inst[m.CONVERSION_ERRORS.name].add(
                    1, {**counted, ERROR_TYPE: type(error).__qualname__})
            inst[m.CONVERSION_DURATION.name].record(duration, {
                a.M_MODEL_SIZE: attrs[a.M_MODEL_SIZE], a.M_FRAMEWORK: target.framework})
            if error is None:
                for callback in list(self.on_converted):
                    _quietly(lambda: callback(result, target, call), "post-conversion callback")
            return
        inst[m.COMPILATIONS.name].add(1, attrs)
        if error is not None:
            inst[m.COMPILATION_ERRORS.name].add(1, {**attrs, ERROR_TYPE: type(error).__qualname__})
        short = {k: attrs[k] for k in (a.M_TARGET_HARDWARE, a.M_FRAMEWORK, a.M_OPERATION)}
        inst[m.COMPILATION_DURATION.name].record(duration, short)
        if call.peak_rss is not None:
            after = _peak_rss_bytes()
            if after is not None:
                growth = max(0, after - call.peak_rss)
                inst[m.COMPILATION_MEMORY.name].record(growth, short)
                if call.span.is_recording():
                    call.span.set_attribute(a.MEMORY_GROWTH, growth)
