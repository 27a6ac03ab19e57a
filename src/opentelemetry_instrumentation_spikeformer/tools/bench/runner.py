"""One benchmark run: for each model, the ANN's figures, then for each framework
that converts it its conversion and, for each timesteps value, the SNN's
figures; a model trained directly as an SNN gets the SNN's figures only.

Each run is one trace: a ``spikeformer.benchmark`` root span and one child
span per stage (load_data, train, convert, evaluate, latency, throughput). A
case that raises (training, a conversion, an inference) becomes an error row,
one warning and a ``spikeformer.benchmark.errors`` count; the others go on.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from opentelemetry import trace

from ...core import attributes as a
from ...core import model_info
from ...core.hardware import hardware_label
from ...core.scope import get_tracer
from ...monitor import energy
from .. import digits
from . import measure
from . import metrics as bm
from .instruments import BenchInstruments
from .spec import FRAMEWORKS, MODELS, BenchConfig, Model
from .workloads import Workloads

_LOG = logging.getLogger(__name__)
SPAN_PREFIX = "spikeformer.benchmark"
_WEIGHTS = SPAN_PREFIX + ".weights"  # span attribute: trained | loaded | reused
_IMAGE_SIZE = SPAN_PREFIX + ".image_size"  # span attribute of load_data: pixels a side


@dataclass
class Row:
    """The figures of one (model, framework, timesteps) case; ANN rows have
    framework ``torch`` and no timesteps."""

    model: str
    framework: str
    network: str  # bm.NETWORK_ANN | NETWORK_SNN
    device: str  # hardware label of where it ran (cpu, cuda)
    timesteps: int | None = None
    accuracy: float | None = None
    accuracy_drop: float | None = None
    latency_s: list[float] = field(default_factory=list)
    throughput: float | None = None
    sparsity: float | None = None
    synops: float | None = None  # synaptic operations per inference
    energy_mj: dict[str, float | None] = field(default_factory=dict)  # by energy target
    error: str | None = None

    @property
    def latency_p50(self) -> float | None:
        return measure.quantile(self.latency_s, 0.5)

    @property
    def latency_p95(self) -> float | None:
        return measure.quantile(self.latency_s, 0.95)

    def attributes(self, keys: tuple[str, ...], target: str | None = None) -> dict[str, Any]:
        """Metric attributes for ``keys``; ``target`` (an energy table) replaces the device."""
        values = {
            a.M_MODEL_NAME: self.model, a.M_FRAMEWORK: self.framework,
            a.M_HARDWARE_TARGET: target or self.device, a.M_NETWORK: self.network,
            a.M_TIMESTEPS: self.timesteps,
        }
        return {k: values[k] for k in keys if values.get(k) is not None}


@dataclass
class BenchResult:
    config: BenchConfig
    rows: list[Row]
    seconds: float
    run: int = 1
    test_samples: int = 0

    @property
    def errors(self) -> list[Row]:
        return [row for row in self.rows if row.error]


class _Run:
    def __init__(self, cfg: BenchConfig, tracer: Any, instruments: BenchInstruments,
                 workloads: Workloads, meter_provider: Any) -> None:
        self.cfg = cfg
        self.tracer = tracer
        self.instruments = instruments
        self.workloads = workloads
        self.meter_provider = meter_provider
        self.device = hardware_label(cfg.device)
        tables = energy.tables(cfg.energy_table)
        self.tables = {name: tables[name] for name in cfg.targets}
        self.rows: list[Row] = []
        self.test_samples = 0
        self._loaded: dict[int, tuple[Any, Any, Any]] = {}  # image side -> data, x, y

    @contextlib.contextmanager
    def stage(self, name: str, model: str | None = None, framework: str | None = None,
              timesteps: int | None = None) -> Iterator[Any]:
        attrs = {a.STAGE: name, a.MODEL_NAME: model, a.FRAMEWORK: framework,
                 a.TIMESTEPS: timesteps}
        with self.tracer.start_as_current_span(
                f"{SPAN_PREFIX}.{name}",
                attributes={k: v for k, v in attrs.items() if v is not None}) as span:
            yield span

    def failed(self, row: Row, exc: BaseException) -> None:
        row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        self.instruments.error(row.model, row.framework, exc)
        _LOG.warning("benchmark %s/%s failed: %s", row.model, row.framework, row.error)
        self.rows.append(row)

    # -- the run ---------------------------------------------------------------
    def execute(self) -> list[Row]:
        cfg = self.cfg
        for name in cfg.models:
            model = MODELS[name]
            try:
                data, x_test, y_test = self._data(model.image_size)
            except Exception as exc:
                self.failed(Row(name, a.UNSPECIFIED, bm.NETWORK_ANN, self.device), exc)
                continue
            if model.library:
                try:
                    self._direct(name, model, x_test, y_test)
                except Exception as exc:
                    self.failed(Row(name, model.library, bm.NETWORK_SNN, self.device), exc)
                continue
            ann_row = Row(name, bm.FRAMEWORK_TORCH, bm.NETWORK_ANN, self.device)
            try:
                ann = self._ann(ann_row, x_test, y_test)
            except Exception as exc:
                self.failed(ann_row, exc)
                continue
            self.rows.append(ann_row)
            for framework in (f for f in cfg.frameworks if f in model.frameworks):
                try:
                    self._snn(ann, ann_row, FRAMEWORKS[framework], data, x_test, y_test)
                except Exception as exc:
                    self.failed(Row(name, framework, bm.NETWORK_SNN, self.device), exc)
        return self.rows

    def _data(self, size: int) -> tuple[Any, Any, Any]:
        """The digits at ``size`` pixels a side, loaded in a span the first time."""
        found = self._loaded.get(size)
        if found is None:
            with self.stage("load_data") as span:
                span.set_attribute(_IMAGE_SIZE, size)
                data = self.workloads.data(self.cfg.seed, size)
                found = (data, data.x_test.to(self.cfg.device), data.y_test.to(self.cfg.device))
            self._loaded[size] = found
            self.test_samples = len(found[2])
        return found

    def _train(self, name: str, epochs: int) -> Any:
        with self.stage("train", name) as span:
            trained, how = self.workloads.ann(name, self.cfg.seed, epochs)
            span.set_attribute(_WEIGHTS, how)
        return trained

    def _ann(self, row: Row, x_test: Any, y_test: Any) -> Any:
        import torch

        cfg = self.cfg
        ann = self._train(row.model, cfg.epochs)
        model = copy.deepcopy(ann).to(cfg.device)

        def infer(x):
            with torch.no_grad():
                return model(x)

        with self.stage("evaluate", row.model, row.framework) as span:
            row.accuracy = digits.accuracy(self._batched(infer, x_test), y_test)
            span.set_attribute(bm.BENCHMARK_ACCURACY.name, row.accuracy)
        self._time(row, infer, x_test)
        return ann

    def _snn(self, ann: Any, ann_row: Row, framework: Any, data: Any, x_test: Any,
             y_test: Any) -> None:
        cfg = self.cfg
        snn = None
        for steps in cfg.timesteps:
            if snn is None or framework.per_timesteps:
                converted_for = steps if framework.per_timesteps else None
                with self.stage("convert", ann_row.model, framework.name, converted_for):
                    snn = framework.convert(copy.deepcopy(ann), data,
                                            converted_for or max(cfg.timesteps)).to(cfg.device)
            row = Row(ann_row.model, framework.name, bm.NETWORK_SNN, self.device, steps)
            self._measure_snn(row, snn, lambda x, s=snn, t=steps: framework.run(s, x, t),
                              x_test, y_test, ann_row)

    def _direct(self, name: str, model: Model, x_test: Any, y_test: Any) -> None:
        """An SNN trained directly: no ANN, no conversion; every T runs the same weights."""
        snn = copy.deepcopy(self._train(name, self.cfg.snn_epochs)).to(self.cfg.device)
        for steps in self.cfg.timesteps:
            row = Row(name, model.library, bm.NETWORK_SNN, self.device, steps)
            self._measure_snn(row, snn, lambda x, t=steps: model.run(snn, x, t), x_test, y_test)

    def _measure_snn(self, row: Row, snn: Any, infer: Callable, x_test: Any, y_test: Any,
                     ann_row: Row | None = None) -> None:
        with self.stage("evaluate", row.model, row.framework, row.timesteps) as span:
            logits, snapshot = self._monitored(snn, row.model, infer, x_test)
            row.accuracy = digits.accuracy(logits, y_test)
            if ann_row is not None:
                row.accuracy_drop = ann_row.accuracy - row.accuracy
            row.sparsity = snapshot["sparsity"]
            for target, table in self.tables.items():
                estimate = energy.reestimate(snapshot, table)
                row.energy_mj[target] = estimate["snn_mj"]
                row.synops = estimate["synops_per_inference"]
                if ann_row is not None:
                    ann_row.energy_mj.setdefault(target, estimate["ann_mj"])
            span.set_attribute(bm.BENCHMARK_ACCURACY.name, row.accuracy)
            for spec, value in ((bm.BENCHMARK_SPARSITY, row.sparsity),
                                (bm.BENCHMARK_SYNOPS, row.synops)):
                if value is not None:
                    span.set_attribute(spec.name, value)
        self._time(row, infer, x_test)
        self.rows.append(row)

    def _monitored(self, snn: Any, name: str, infer: Callable, x_test: Any) -> tuple[Any, dict]:
        """Outputs over the test set and the spike monitor's counts for exactly that
        pass. Reuses a monitor already attached (the instrumentor's), else attaches
        one for the pass only: latency and throughput then time the bare model."""
        from ...monitor.spike_monitor import monitor_model, monitors_of

        existing = monitors_of(model_info.unwrap_model(snn))
        monitor = existing[0] if existing else monitor_model(
            snn, name, hardware=next(iter(self.tables)), meter_provider=self.meter_provider,
            sample_every=1)
        try:
            monitor.reset()
            logits = self._batched(infer, x_test)
            return logits, monitor.read()
        finally:
            if not existing:
                monitor.detach()

    def _batched(self, infer: Callable, x: Any) -> Any:
        import torch

        size = self.cfg.batch_size
        return torch.cat([infer(x[at:at + size]) for at in range(0, len(x), size)])

    def _time(self, row: Row, infer: Callable, x_test: Any) -> None:
        cfg = self.cfg
        with self.stage("latency", row.model, row.framework, row.timesteps) as span:
            row.latency_s = measure.latencies(infer, x_test, cfg.latency_samples, cfg.device)
            if row.latency_s:
                span.set_attribute(SPAN_PREFIX + ".latency_p50", row.latency_p50)
        with self.stage("throughput", row.model, row.framework, row.timesteps) as span:
            row.throughput = measure.throughput(infer, x_test, cfg.batch_size, cfg.device,
                                                cfg.min_throughput_s)
            span.set_attribute(bm.BENCHMARK_THROUGHPUT.name, row.throughput)


def run_benchmark(config: BenchConfig | None = None, *, tracer_provider: Any = None,
                  meter_provider: Any = None, workloads: Workloads | None = None,
                  run: int = 1) -> BenchResult:
    """One run over ``config`` (default: the ``OTEL_PYTHON_SPIKEFORMER_BENCH_*``
    settings); records the metrics and returns the rows. Providers default to
    the global ones."""
    cfg = (config or BenchConfig.from_settings()).resolved()
    tracer = get_tracer(tracer_provider)
    instruments = BenchInstruments(meter_provider)
    runner = _Run(cfg, tracer, instruments, workloads or Workloads(cfg.cache_dir), meter_provider)
    start = time.perf_counter()
    with tracer.start_as_current_span(SPAN_PREFIX, attributes={
            SPAN_PREFIX + ".run": run, SPAN_PREFIX + ".models": list(cfg.models),
            SPAN_PREFIX + ".frameworks": list(cfg.frameworks),
            SPAN_PREFIX + ".targets": list(cfg.targets),
            SPAN_PREFIX + ".timesteps": list(cfg.timesteps)}) as span:
        rows = runner.execute()
        errors = sum(1 for row in rows if row.error)
        span.set_attribute(SPAN_PREFIX + ".rows", len(rows))
        span.set_attribute(SPAN_PREFIX + ".errors", errors)
        if errors:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{errors} case(s) failed"))
    for row in rows:
        if not row.error:
            instruments.record(row)
    instruments.run_done()
    return BenchResult(cfg, rows, time.perf_counter() - start, run, runner.test_samples)


def run_periodic(config: BenchConfig | None = None, interval_s: float = 6 * 3600.0, *,
                 stop: threading.Event | None = None, runs: int | None = None,
                 on_result: Callable[[BenchResult], None] | None = None,
                 tracer_provider: Any = None, meter_provider: Any = None,
                 workloads: Workloads | None = None) -> int:
    """Run every ``interval_s`` seconds (start to start) until ``stop`` is set or
    ``runs`` runs are done; flush the providers after each run so that every
    run is exported at once. Returns the number of completed runs. A run that
    fails as a whole is logged and the schedule goes on (the design's periodic loop)."""
    cfg = (config or BenchConfig.from_settings()).resolved()
    stop = stop or threading.Event()
    workloads = workloads or Workloads(cfg.cache_dir)
    done = 0
    next_start = time.monotonic()
    while not stop.is_set() and (runs is None or done < runs):
        try:
            result = run_benchmark(cfg, tracer_provider=tracer_provider,
                                   meter_provider=meter_provider, workloads=workloads,
                                   run=done + 1)
        except Exception as exc:
            _LOG.warning("benchmark run %d failed: %s: %s", done + 1, type(exc).__name__, exc)
        else:
            if on_result is not None:
                on_result(result)
        done += 1
        _flush(tracer_provider, meter_provider)
        next_start = max(next_start + interval_s, time.monotonic())  # a slow run skips slots
        if runs is not None and done >= runs:
            break
        if stop.wait(max(0.0, next_start - time.monotonic())):
            break
    return done


def _flush(tracer_provider: Any, meter_provider: Any) -> None:
    from opentelemetry import metrics

    for provider in (tracer_provider or trace.get_tracer_provider(),
                     meter_provider or metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()
