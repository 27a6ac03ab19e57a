"""OTel instruments of the benchmark runner (``metrics.BENCHMARK_METRICS``).

Results are synchronous gauges: each keeps the latest run's value per
attribute set, so a periodic runner's series persist between runs. Latency is
a histogram (one record per timed sample) for p50/p95 in the backend
(``histogram_quantile``).
"""

from __future__ import annotations

from typing import Any, Callable

from ...core import attributes as a
from ...core.metrics import MetricSpec
from ...core.scope import get_meter
from . import metrics as bm


# gauge spec -> the row's value (None: not recorded for that row)
_GAUGES: tuple[tuple[MetricSpec, Callable[[Any], float | None]], ...] = (
    (bm.BENCHMARK_ACCURACY, lambda row: row.accuracy),
    (bm.BENCHMARK_ACCURACY_DROP, lambda row: row.accuracy_drop),
    (bm.BENCHMARK_THROUGHPUT, lambda row: row.throughput),
    (bm.BENCHMARK_SYNOPS, lambda row: row.synops),
    (bm.BENCHMARK_SPARSITY, lambda row: row.sparsity),
)


class BenchInstruments:
    def __init__(self, meter_provider: Any = None) -> None:
        meter = get_meter(meter_provider)
        self._by_spec = {spec: spec.create(meter) for spec in bm.BENCHMARK_METRICS}

    def record(self, row: Any) -> None:
        """Every figure of one result row, under that row's attributes."""
        for spec, value_of in _GAUGES:
            value = value_of(row)
            if value is not None:
                self._by_spec[spec].set(value, row.attributes(spec.attributes))
        energy = self._by_spec[bm.BENCHMARK_ENERGY]
        for target, mj in row.energy_mj.items():
            if mj is not None:
                energy.set(mj, row.attributes(bm.BENCHMARK_ENERGY.attributes, target))
        latency = self._by_spec[bm.BENCHMARK_LATENCY]
        attrs = row.attributes(bm.BENCHMARK_LATENCY.attributes)
        for seconds in row.latency_s:
            latency.record(seconds, attrs)

    def run_done(self) -> None:
        self._by_spec[bm.BENCHMARK_RUNS].add(1)

    def error(self, model: str, framework: str, exc: BaseException) -> None:
        self._by_spec[bm.BENCHMARK_ERRORS].add(1, {
            a.M_MODEL_NAME: model, a.M_FRAMEWORK: framework,
            a.M_ERROR_TYPE: type(exc).__qualname__})
