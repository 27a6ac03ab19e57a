"""sPyNNaker (SpiNNaker): the mapping of a PyNN ``sim.run`` onto a (virtual)
machine, one span per toolchain step.

    spikeformer.compile spynnaker       AbstractSpinnakerBase.run / run_until_complete
      spikeformer.stage Mapping Stage   one FecTimer category segment (Waiting: none)
        spikeformer.stage Application Placer   one FecTimer step

Every step of sPyNNaker goes through ``FecTimer`` (``with FecTimer(name, work)``,
``skip``/``error``), which writes ``timer_provenance`` in the run's
``global_provenance.sqlite3``. A step span starts before the timer does (our
cost stays outside the toolchain's timing) and ends at start + the timer's own
``time_taken``, so spans and the database agree. ``FecTimer`` has ``__slots__``
and no weak references: step state lives here, keyed by ``id(timer)``.

Resources are read when a run that mapped ends: placements, machine and
routing tables from ``FecDataView``; compressed tables exist only as the return
value of ``_do_early_compression`` (the host-side compressor).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import Counter
from typing import Any

from opentelemetry import context, trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Status, StatusCode

from ..core import attributes as a
from ..core.errors import quietly
from ..core.targets import STAGE, RowHooks, Target
from ..core.wrappers import bypass
from . import mapping
from .base import Framework

NAME, HARDWARE = "spynnaker", "spinnaker"
FEC_TIMER = "spinn_front_end_common.interface.provenance.fec_timer"
BASE = "spinn_front_end_common.interface.abstract_spinnaker_base"
IDLE_CATEGORY = "WAITING"  # time between user calls: starts inside run() and ends outside it
MAX_OPEN_STEPS = 256  # FecTimers entered and never exited (never seen): forget them

# Span attributes
CATEGORY = "spinnaker.category"
STEP = "spinnaker.step"
WORK = "spinnaker.step.work"
OUTCOME = "spinnaker.step.outcome"  # ok | skipped | error | exception
SKIP_REASON = "spinnaker.step.skip_reason"
STEP_ERROR = "spinnaker.step.error"
MAPPED = "spinnaker.mapped"
PROVENANCE_DB = "spinnaker.provenance_db"


class _Step:
    __slots__ = ("span", "token", "start_ns", "outcome", "error", "ended")

    def __init__(self, span: Any, token: Any, start_ns: int) -> None:
        self.span, self.token, self.start_ns = span, token, start_ns
        self.outcome, self.error, self.ended = "ok", None, False


class _State:
    """Open category, steps and run of one session (FecTimer's own state is global)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.category: Any = None  # span of the open category segment
        self.steps: dict[int, _Step] = {}
        self.run_span: Any = None
        self.mapped = False
        self.compressed: Any = None


_STATES: "weakref.WeakKeyDictionary[Any, _State]" = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(telemetry: Any) -> _State:
    with _STATES_LOCK:
        found = _STATES.get(telemetry)
        if found is None:
            found = _STATES[telemetry] = _State()
        return found


def _quietly(where: str, step: Any, *args: Any) -> Any:
    return quietly(f"spinnaker {where}", step, *args)


# --------------------------------------------------------------------------
# Categories: FecTimer._change_category(cls, category), stop_category_timing(cls)
# --------------------------------------------------------------------------
def _switch_category(session: Any, state: _State, category: Any, now: int, start: bool) -> None:
    with state.lock:
        previous, state.category = state.category, None
        if previous is not None:
            previous.end(end_time=now)
        if not start or getattr(category, "name", None) == IDLE_CATEGORY:
            return
        if category.name == "MAPPING" and state.run_span is not None:
            state.mapped = True
        parent = trace.set_span_in_context(state.run_span) if state.run_span is not None else None
        state.category = session.telemetry.tracer.start_span(
            f"spikeformer.stage {category.category_name}", context=parent, start_time=now,
            attributes={a.FRAMEWORK: NAME, CATEGORY: category.name})


def _change_category(session: Any):
    """Ends the open category span; starts the next one (none for Waiting)."""
    def wrapper(wrapped, instance, args, kwargs):
        now = time.time_ns()
        result = wrapped(*args, **kwargs)
        category = args[0] if args else kwargs.get("category")
        _quietly("category", _switch_category, session, _state(session.telemetry), category,
                 now, not bypass(session))
        return result

    return wrapper


def _stop_category_timing(session: Any):
    """Ends the last category span (sim.end)."""
    def wrapper(wrapped, instance, args, kwargs):
        now = time.time_ns()
        result = wrapped(*args, **kwargs)
        _quietly("category", _switch_category, session, _state(session.telemetry), None, now,
                 False)
        return result

    return wrapper


# --------------------------------------------------------------------------
# Steps: __enter__, skip / error, _insert_timing, __exit__
# --------------------------------------------------------------------------
def _begin_step(session: Any, state: _State, timer: Any, start: int) -> None:
    work = getattr(timer._work, "work_name", str(timer._work))
    with state.lock:
        parent = trace.set_span_in_context(state.category) if state.category is not None else None
        span = session.telemetry.tracer.start_span(
            f"spikeformer.stage {timer._algorithm}", context=parent, start_time=start,
            attributes={a.FRAMEWORK: NAME, STEP: timer._algorithm, WORK: work})
        if len(state.steps) >= MAX_OPEN_STEPS:
            state.steps.clear()
        state.steps[id(timer)] = _Step(span, context.attach(trace.set_span_in_context(span)),
                                       start)


def _enter(session: Any):
    """Starts the step span under its category, before the timer starts."""
    def wrapper(wrapped, instance, args, kwargs):
        if not bypass(session):
            # our span first, the timer second: our cost is outside its interval
            _quietly("step start", _begin_step, session, _state(session.telemetry), instance,
                     time.time_ns())
        return wrapped(*args, **kwargs)

    return wrapper


def _outcome(outcome: str):
    """skip() / error(): what the following _insert_timing records."""
    def factory(session: Any):
        def wrapper(wrapped, instance, args, kwargs):
            step = _state(session.telemetry).steps.get(id(instance))
            if step is not None and not step.ended:
                step.outcome = outcome
            return wrapped(*args, **kwargs)

        return wrapper

    factory.__doc__ = f"Marks the step {outcome}; _insert_timing ends its span."
    return factory


def _end_step(step: _Step, time_taken: Any, reason: Any) -> None:
    step.ended = True
    span = step.span
    if span.is_recording():
        span.set_attribute(OUTCOME, step.outcome)
        if step.outcome == "skipped":
            span.set_attribute(SKIP_REASON, str(reason))
        elif step.outcome == "error":
            span.set_attribute(STEP_ERROR, str(reason))
            span.set_status(Status(StatusCode.ERROR, str(reason)))
        elif step.outcome == "exception" and step.error is not None:
            span.record_exception(step.error)
            span.set_attribute(ERROR_TYPE, type(step.error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(step.error).__name__))
    # exactly the duration the toolchain writes into timer_provenance
    span.end(end_time=step.start_ns + round(time_taken.total_seconds() * 1e9))


def _insert_timing(session: Any):
    """Ends the step span at its start + the timer's own time_taken, with the outcome."""
    def wrapper(wrapped, instance, args, kwargs):
        step = _state(session.telemetry).steps.get(id(instance))
        if step is not None and not step.ended:
            time_taken = args[0] if args else kwargs.get("time_taken")
            reason = args[1] if len(args) > 1 else kwargs.get("skip_reason")
            _quietly("step end", _end_step, step, time_taken, reason)
        return wrapped(*args, **kwargs)

    return wrapper


def _exit(session: Any):
    """Marks an exception as the step's outcome; forgets the timer."""
    def wrapper(wrapped, instance, args, kwargs):
        state = _state(session.telemetry)
        step = state.steps.get(id(instance))
        if step is not None and not step.ended and args and args[0] is not None:
            step.outcome, step.error = "exception", args[1] if len(args) > 1 else None
        try:
            return wrapped(*args, **kwargs)
        finally:
            if step is not None:
                state.steps.pop(id(instance), None)
                if not step.ended:  # the toolchain recorded no timing: end it here
                    step.ended = True
                    _quietly("step end", step.span.end)
                _quietly("context", context.detach, step.token)

    return wrapper


# --------------------------------------------------------------------------
# Runs: the compile span's hooks, and the compressor's result
# --------------------------------------------------------------------------
def _early_compression(session: Any):
    """Keeps the host-compressed routing tables for the compile span's resources."""
    def wrapper(wrapped, instance, args, kwargs):
        result = wrapped(*args, **kwargs)
        state = _state(session.telemetry)
        if state.run_span is not None:
            state.compressed = result  # None when the machine compresses on chip
        return result

    return wrapper


class _RunHooks(RowHooks):
    def on_start(self, call: Any, bound: Any) -> None:
        state = _state(call.telemetry)
        state.run_span, state.mapped, state.compressed = call.span, False, None

    def on_end(self, call: Any, result: Any, error: BaseException | None) -> None:
        state = _state(call.telemetry)
        mapped, compressed = state.mapped, state.compressed
        state.run_span, state.mapped, state.compressed = None, False, None
        span = call.span
        if span.is_recording():
            span.set_attribute(MAPPED, mapped)
            _quietly("provenance path", _set_provenance_path, span)
        if mapped and error is None:
            resources, details = read_resources(compressed)
            if span.is_recording():
                span.set_attributes({f"spinnaker.{k}": v for k, v in details.items()})
            mapping.publish(call.telemetry, resources)


def _set_provenance_path(span: Any) -> None:
    from spinn_front_end_common.interface.provenance import GlobalProvenance

    span.set_attribute(PROVENANCE_DB, GlobalProvenance.get_global_provenace_path())  # sic


def read_resources(compressed: Any = None) -> tuple[mapping.Resources, dict[str, Any]]:
    """The latest mapping from ``FecDataView``: metrics and span details.

    Chips used are those with an application placement (every chip carries a
    system monitor core); a chip's utilisation counts all its placed cores over
    its usable ones (the SCAMP monitor core excluded)."""
    from spinn_front_end_common.data import FecDataView

    machine = FecDataView.get_machine()
    placements = list(FecDataView.iterate_placemements())  # sic
    on_chip = Counter((p.x, p.y) for p in placements)
    app_chips = Counter((p.x, p.y) for p in placements if p.vertex.app_vertex is not None)
    utilization = {f"{x},{y}": on_chip[(x, y)] / machine.get_chip_at(x, y).n_placable_processors
                   for x, y in app_chips}
    uncompressed = FecDataView.get_uncompressed()
    routing = {"uncompressed": (uncompressed.get_total_number_of_entries(),
                                uncompressed.get_max_number_of_entries())}
    if compressed is not None:
        routing["compressed"] = (compressed.get_total_number_of_entries(),
                                 compressed.get_max_number_of_entries())
    resources = mapping.Resources(
        HARDWARE, chips=(len(app_chips), machine.n_chips),
        cores=(len(placements), machine.total_available_user_cores),
        utilization=utilization, routing=routing)
    details: dict[str, Any] = {
        "chips_used": len(app_chips), "chips_available": machine.n_chips,
        "cores_used": len(placements), "cores_used_application": sum(app_chips.values()),
        "cores_available": machine.total_available_user_cores,
        "chip_core_utilization_max": max(utilization.values(), default=0.0),
        "routing_tables": len(uncompressed),
        "router_table_capacity": machine.min_n_router_enteries,  # sic
        "partitions": FecDataView.get_n_partitions(),
        "machine_vertices": FecDataView.get_n_machine_vertices(),
    }
    for table, (total, most) in routing.items():
        details[f"routing_entries_{table}"] = total
        details[f"routing_entries_{table}_max"] = most
    return resources, details


def _timer_row(qualname: str, factory: Any) -> Target:
    return Target(FEC_TIMER, f"FecTimer.{qualname}", framework=NAME, role=STAGE, wrapper=factory)


_RUN = _RunHooks()

FRAMEWORK = Framework(
    name=NAME,
    packages=("spinn_front_end_common",),
    tested_with="sPyNNaker 1!7.4.1 (virtual board)",
    targets=(
        Target(BASE, "AbstractSpinnakerBase.run", a.COMPILATION, NAME, hardware_value=HARDWARE,
               hooks=_RUN),
        Target(BASE, "AbstractSpinnakerBase.run_until_complete", a.COMPILATION, NAME,
               hardware_value=HARDWARE, hooks=_RUN),
        Target(BASE, "AbstractSpinnakerBase._do_early_compression", framework=NAME, role=STAGE,
               wrapper=_early_compression),
        _timer_row("_change_category", _change_category),
        _timer_row("stop_category_timing", _stop_category_timing),
        _timer_row("__enter__", _enter),
        _timer_row("skip", _outcome("skipped")),
        _timer_row("error", _outcome("error")),
        _timer_row("_insert_timing", _insert_timing),
        _timer_row("__exit__", _exit),
    ),
    hardware=(HARDWARE, "spinnaker2"),
    metrics=(mapping.CHIPS, mapping.CORES, mapping.CORE_UTILIZATION, mapping.ROUTING_ENTRIES),
)
