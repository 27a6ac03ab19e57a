"""``MetricSpec``: one emitted instrument described once (name, kind, unit,
buckets, attributes, Prometheus name) and created from that description; and
the core's own instruments (conversions and compilations).

Every feature declares its specs next to its code (``monitor.metrics``,
``devices.metrics``, ``structured_logging``, ``tools.bench.metrics``, framework
extensions); ``all_metrics()`` lists them all for README, dashboards and alerts.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from . import attributes as a
from . import forksafe

# MetricSpec.kind -> the Meter method that creates it.
_FACTORIES = {
    "counter": "create_counter",
    "up_down_counter": "create_up_down_counter",
    "histogram": "create_histogram",
    "gauge": "create_gauge",
    "observable_counter": "create_observable_counter",
    "observable_gauge": "create_observable_gauge",
    "observable_up_down_counter": "create_observable_up_down_counter",
}
KINDS = tuple(_FACTORIES)

# Explicit histogram boundaries in seconds, 1 ms ... 1 h (the SDK default is
# shaped for milliseconds).
DURATION_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)
# Bytes, 1 MiB ... 64 GiB.
MEMORY_BUCKETS_BY = tuple(float(2**p) for p in range(20, 37, 2))


@dataclass(frozen=True)
class MetricSpec:
    """One emitted instrument; README's metric table is generated from these."""

    name: str
    kind: str  # one of KINDS (the Meter method without ``create_``)
    unit: str
    prometheus: str  # name after the SDK's Prometheus exporter
    attributes: tuple[str, ...]
    description: str
    design: str = ""  # Prometheus name in the original observability design, if it had one
    buckets: tuple[float, ...] = ()  # explicit histogram boundaries

    def __post_init__(self) -> None:
        if self.kind not in _FACTORIES:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    @property
    def observable(self) -> bool:
        return self.kind.startswith("observable_")

    def create(self, meter: Any, callbacks: Iterable[Any] = ()) -> Any:
        """The instrument on ``meter`` (with ``callbacks`` if observable)."""
        kwargs: dict[str, Any] = {"unit": self.unit, "description": self.description}
        if self.observable:
            kwargs["callbacks"] = list(callbacks)
        if self.buckets:
            kwargs["explicit_bucket_boundaries_advisory"] = list(self.buckets)
        return getattr(meter, _FACTORIES[self.kind])(self.name, **kwargs)


def create_all(meter: Any, specs: Iterable[MetricSpec]) -> dict[str, Any]:
    """Synchronous instruments by metric name (observable ones are created
    with their callbacks, once per provider: see ``once_per``)."""
    return {spec.name: spec.create(meter) for spec in specs if not spec.observable}


T = TypeVar("T")
# owner -> {kind: built}; weak, so a dropped provider is freed. Owners that
# cannot be weakly referenced are kept by id (with the owner, so the id stays theirs).
_ONCE: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()
_ONCE_STRONG: dict[int, tuple[Any, dict[str, Any]]] = {}
ONCE_LOCK = forksafe.lock()


def once_per(kind: str, owner: Any, build: Callable[[], T]) -> T:
    """``build()`` once per ``owner`` (a meter or meter provider) and ``kind``.

    The SDK keeps the first registration of an observable instrument and drops
    the callbacks of any later one with the same name, and callbacks cannot be
    unregistered: so each observable instrument set exists once per owner and
    is reused by every later session on it.
    """
    with ONCE_LOCK:
        try:
            built = _ONCE.setdefault(owner, {})
        except TypeError:  # not weakly referenceable, or unhashable
            built = _ONCE_STRONG.setdefault(id(owner), (owner, {}))[1]
        if kind not in built:
            built[kind] = build()
        return built[kind]


_CONV_ATTRS = (a.M_MODEL_TYPE, a.M_HARDWARE_TARGET, a.M_FRAMEWORK)
_COMP_ATTRS = (a.M_MODEL_TYPE, a.M_TARGET_HARDWARE, a.M_FRAMEWORK, a.M_OPERATION)
_COMP_SHORT = (a.M_TARGET_HARDWARE, a.M_FRAMEWORK, a.M_OPERATION)

CONVERSIONS = MetricSpec(
    "spikeformer.conversions", "counter", "{conversion}", "spikeformer_conversions_total",
    _CONV_ATTRS, "ANN to SNN conversions started (success or not)",
    "spikeformer_conversions_total",
)
CONVERSION_ERRORS = MetricSpec(
    "spikeformer.conversion.errors", "counter", "{error}", "spikeformer_conversion_errors_total",
    _CONV_ATTRS + (a.M_ERROR_TYPE,), "Conversions that raised",
    "spikeformer_conversion_errors_total",
)
CONVERSION_DURATION = MetricSpec(
    "spikeformer.conversion.duration", "histogram", "s",
    "spikeformer_conversion_duration_seconds", (a.M_MODEL_SIZE, a.M_FRAMEWORK),
    "Wall time of a conversion", "spikeformer_conversion_duration_seconds",
    DURATION_BUCKETS_S,
)
ACTIVE_CONVERSIONS = MetricSpec(
    "spikeformer.active_conversions", "observable_up_down_counter", "{conversion}",
    "spikeformer_active_conversions", (a.M_FRAMEWORK,), "Conversions in progress",
    "spikeformer_active_conversions",
)
COMPILATIONS = MetricSpec(
    "spike_compiler.compilations", "counter", "{compilation}",
    "spike_compiler_compilations_total", _COMP_ATTRS,
    "Compilations, NIR exports/imports and deployments started",
    "spike_compiler_compilations_total",
)
COMPILATION_ERRORS = MetricSpec(
    "spike_compiler.compilation.errors", "counter", "{error}",
    "spike_compiler_compilation_errors_total", _COMP_ATTRS + (a.M_ERROR_TYPE,),
    "Compilations, exports and deployments that raised",
)
COMPILATION_DURATION = MetricSpec(
    "spike_compiler.compilation.duration", "histogram", "s",
    "spike_compiler_compilation_duration_seconds", _COMP_SHORT,
    "Wall time of a compilation/export/deployment",
    "spike_compiler_compilation_duration_seconds", DURATION_BUCKETS_S,
)
COMPILATION_MEMORY = MetricSpec(
    "spike_compiler.compilation.memory_growth", "histogram", "By",
    "spike_compiler_compilation_memory_growth_bytes", _COMP_SHORT,
    "Growth of the process' peak RSS during a compilation (memory usage during compilation)",
    buckets=MEMORY_BUCKETS_BY,
)

CORE_METRICS = (
    CONVERSIONS, CONVERSION_ERRORS, CONVERSION_DURATION, ACTIVE_CONVERSIONS,
    COMPILATIONS, COMPILATION_ERRORS, COMPILATION_DURATION, COMPILATION_MEMORY,
)


def all_metrics() -> tuple[MetricSpec, ...]:
    """Every metric the plugin can emit, features and framework extensions included."""
    from .. import frameworks, structured_logging
    from ..devices import metrics as devices
    from ..monitor import metrics as monitor
    from ..tools.bench import metrics as bench

    # Extensions may share specs (the chip toolchains' compile metrics): list each once.
    extension_specs = {spec.name: spec for fw in frameworks.all_frameworks()
                       for spec in fw.metrics}
    return (CORE_METRICS + monitor.MONITOR_METRICS + devices.HARDWARE_METRICS
            + tuple(extension_specs.values()) + structured_logging.LOGGING_METRICS
            + bench.BENCHMARK_METRICS)
