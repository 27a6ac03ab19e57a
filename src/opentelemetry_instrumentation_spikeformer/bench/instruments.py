"""OTel instruments of the benchmark runner (``semconv.BENCHMARK_METRICS``).

Results are synchronous gauges: each keeps the latest run's value per
attribute set, so a periodic runner's series persist between runs. Latency is
a histogram (one record per timed sample) for p50/p95 in the backend
(``histogram_quantile``).
"""

from __future__ import annotations

from typing import Any, Callable

from opentelemetry import metrics

from .. import semconv
from ..version import __version__


# gauge spec -> the row's value (None: not recorded for that row)
_GAUGES: tuple[tuple[semconv.MetricSpec, Callable[[Any], float | None]], ...] = (
    (semconv.BENCHMARK_ACCURACY, lambda row: row.accuracy),
    (semconv.BENCHMARK_ACCURACY_DROP, lambda row: row.accuracy_drop),
    (semconv.BENCHMARK_THROUGHPUT, lambda row: row.throughput),
    (semconv.BENCHMARK_SPARSITY, lambda row: row.sparsity),
)


def _create(meter: Any, spec: semconv.MetricSpec) -> Any:
    if spec.kind == "gauge":
        return meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)
    if spec.kind == "counter":
        return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
    return meter.create_histogram(spec.name, unit=spec.unit, description=spec.description,
                                  explicit_bucket_boundaries_advisory=list(
                                      semconv.LATENCY_BUCKETS_S))


class BenchInstruments:
    def __init__(self, meter_provider: Any = None) -> None:
        meter = metrics.get_meter(semconv.SCOPE, __version__, meter_provider)
        self._by_spec = {spec: _create(meter, spec) for spec in semconv.BENCHMARK_METRICS}

    def record(self, row: Any) -> None:
        """Every figure of one result row, under that row's attributes."""
        for spec, value_of in _GAUGES:
            value = value_of(row)
            if value is not None:
                self._by_spec[spec].set(value, row.attributes(spec.attributes))
        energy = self._by_spec[semconv.BENCHMARK_ENERGY]
        for target, mj in row.energy_mj.items():
            if mj is not None:
                energy.set(mj, row.attributes(semconv.BENCHMARK_ENERGY.attributes, target))
        latency = self._by_spec[semconv.BENCHMARK_LATENCY]
        attrs = row.attributes(semconv.BENCHMARK_LATENCY.attributes)
        for seconds in row.latency_s:
            latency.record(seconds, attrs)

    def run_done(self) -> None:
        self._by_spec[semconv.BENCHMARK_RUNS].add(1)

    def error(self, model: str, framework: str, exc: BaseException) -> None:
        self._by_spec[semconv.BENCHMARK_ERRORS].add(1, {
            semconv.M_MODEL_NAME: model, semconv.M_FRAMEWORK: framework,
            semconv.M_ERROR_TYPE: type(exc).__qualname__})
