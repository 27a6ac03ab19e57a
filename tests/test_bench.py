"""Benchmark runner on real data: scikit-learn's digits, real sinabs and
spikingjelly conversions, the real spike monitor, OTel in-memory readers."""

from __future__ import annotations

import logging
import math
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
from conftest import Telemetry
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)

from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
from opentelemetry_instrumentation_spikeformer.core import attributes
from opentelemetry_instrumentation_spikeformer.tools.bench import metrics as bench_metrics
from opentelemetry_instrumentation_spikeformer.tools.bench import (
    FRAMEWORKS,
    BenchConfig,
    Workloads,
    run_benchmark,
    run_periodic,
)
from opentelemetry_instrumentation_spikeformer.tools.bench.plot import write_plot
from opentelemetry_instrumentation_spikeformer.tools.bench.report import render_table

CHANCE = 0.1  # ten digit classes
SMALL = dict(models=("digits_cnn",), targets=("cmos45nm", "loihi"), latency_samples=10,
             min_throughput_s=0.02)
BENCH_NAMES = {spec.name for spec in bench_metrics.BENCHMARK_METRICS}


@pytest.fixture(scope="session")
def workloads():
    """The digits data and one trained CNN for every test of this session."""
    found = Workloads()
    found.ann("digits_cnn", 0, 15)
    return found


@pytest.fixture(scope="module")
def instrumented_run(workloads):
    """A run of both frameworks at T=4 and 8 with the instrumentor active (as
    ``spikeformer-otel bench`` and ``opentelemetry-instrument`` have it)."""
    tel = Telemetry()
    instrumentor = SpikeformerInstrumentor()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    try:
        result = run_benchmark(BenchConfig(timesteps=(4, 8), **SMALL), workloads=workloads,
                               tracer_provider=tel.tracer_provider,
                               meter_provider=tel.meter_provider)
    finally:
        instrumentor.uninstrument()
    yield result, tel
    tel.shutdown()


class ListExporter(MetricExporter):
    """Keeps every export (the SDK ships no in-memory push exporter)."""

    def __init__(self) -> None:
        super().__init__()
        self.exports: list = []

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass


def _bench_points(tel: Telemetry) -> dict[str, list]:
    return {name: tel.points(name) for name in BENCH_NAMES}


def test_ann_beats_chance_and_snn_accuracy_is_reported_next_to_it(instrumented_run):
    result, _ = instrumented_run
    assert not result.errors
    (ann,) = [r for r in result.rows if r.network == "ann"]
    assert ann.framework == "torch" and ann.timesteps is None
    assert ann.accuracy > CHANCE + 0.7, ann.accuracy
    snn = [r for r in result.rows if r.network == "snn"]
    assert sorted((r.framework, r.timesteps) for r in snn) == [
        ("sinabs", 4), ("sinabs", 8), ("spikingjelly", 4), ("spikingjelly", 8)]
    for row in snn:
        assert CHANCE < row.accuracy <= 1.0
        assert row.accuracy_drop == pytest.approx(ann.accuracy - row.accuracy)
        assert 0.0 < row.sparsity < 1.0
        assert len(row.latency_s) == SMALL["latency_samples"] and row.throughput > 0
    table = render_table(result)
    assert "torch (ANN)" in table and f"{ann.accuracy * 100:.1f}%" in table
    for row in snn:
        assert f"{row.accuracy * 100:.1f}%" in table


def test_energy_per_target_prices_the_same_counts(instrumented_run):
    result, _ = instrumented_run
    from opentelemetry_instrumentation_spikeformer.monitor.energy import BUILTIN_TABLES

    cmos, loihi = BUILTIN_TABLES["cmos45nm"], BUILTIN_TABLES["loihi"]
    for row in result.rows:
        low, high = row.energy_mj["cmos45nm"], row.energy_mj["loihi"]
        if row.network == "ann":  # the ANN at 45 nm; a chip table has no MAC to price it
            assert low > 0 and high is None
        else:  # synops cost 23.6 pJ on Loihi against 0.9 pJ at 45 nm, plus neuron updates
            assert low < high
            assert loihi.synop_pj / cmos.synop_pj > 20


def test_metrics_have_the_expected_names_and_attributes(instrumented_run):
    result, tel = instrumented_run
    points = _bench_points(tel)
    specs = {spec.name: spec for spec in bench_metrics.BENCHMARK_METRICS}
    for name, found in points.items():
        for point in found:
            assert set(point.attributes) <= set(specs[name].attributes), (name, point.attributes)
    accuracy = {(p.attributes["framework"], p.attributes["network"],
                 p.attributes.get("timesteps")): p for p in points[bench_metrics.BENCHMARK_ACCURACY.name]}
    assert set(accuracy) == {("torch", "ann", None), ("sinabs", "snn", 4), ("sinabs", "snn", 8),
                             ("spikingjelly", "snn", 4), ("spikingjelly", "snn", 8)}
    for row in result.rows:
        point = accuracy[(row.framework, row.network, row.timesteps)]
        assert point.value == pytest.approx(row.accuracy)
        assert point.attributes["model_name"] == "digits_cnn"
        assert point.attributes["hardware_target"] == "cpu"  # where the simulation ran
    energy = {(p.attributes["framework"], p.attributes.get("timesteps"),
               p.attributes["hardware_target"]): p.value
              for p in points[bench_metrics.BENCHMARK_ENERGY.name]}
    assert len(energy) == 5 * 2 - 1  # no ANN energy under the chip table
    assert energy[("sinabs", 8, "loihi")] == pytest.approx(
        next(r for r in result.rows if r.framework == "sinabs" and r.timesteps == 8)
        .energy_mj["loihi"])
    latency = points[bench_metrics.BENCHMARK_LATENCY.name]
    assert len(latency) == 5 and all(p.count == SMALL["latency_samples"] for p in latency)
    assert tuple(latency[0].explicit_bounds) == bench_metrics.LATENCY_BUCKETS_S
    for name in (bench_metrics.BENCHMARK_ACCURACY_DROP.name, bench_metrics.BENCHMARK_SPARSITY.name):
        assert len(points[name]) == 4 and all("network" not in p.attributes for p in points[name])
    assert len(points[bench_metrics.BENCHMARK_THROUGHPUT.name]) == 5
    assert [p.value for p in points[bench_metrics.BENCHMARK_RUNS.name]] == [1]
    assert points[bench_metrics.BENCHMARK_ERRORS.name] == []
    # one instrumentation scope for the whole plugin, bench included
    scopes = {sm.scope.name for rm in tel.reader.get_metrics_data().resource_metrics
              for sm in rm.scope_metrics}
    assert scopes == {attributes.SCOPE}
    assert {s.instrumentation_scope.name for s in tel.spans()} == {attributes.SCOPE}


def test_a_run_is_one_trace_with_a_span_per_stage(instrumented_run):
    _, tel = instrumented_run
    (root,) = tel.spans("spikeformer.benchmark")
    spans = [s for s in tel.spans() if s.context.trace_id == root.context.trace_id]
    stages = {s.name for s in spans if s.parent and s.parent.span_id == root.context.span_id}
    assert stages == {f"spikeformer.benchmark.{n}" for n in
                      ("load_data", "train", "convert", "evaluate", "latency", "throughput")}
    assert root.attributes["spikeformer.benchmark.errors"] == 0
    # the instrumented conversions nest under the bench's convert stage
    converts = {s.context.span_id for s in tel.spans("spikeformer.benchmark.convert")}
    nested = [s for s in spans if s.name.startswith("spikeformer.convert ")]
    assert {s.name for s in nested} == {"spikeformer.convert sinabs",
                                        "spikeformer.convert spikingjelly"}
    assert all(s.parent.span_id in converts for s in nested)
    evaluate = [s for s in tel.spans("spikeformer.benchmark.evaluate")
                if s.attributes.get(attributes.FRAMEWORK) == "sinabs"]
    assert sorted(s.attributes[attributes.TIMESTEPS] for s in evaluate) == [4, 8]


@pytest.mark.parametrize("instrumented", [True, False])
def test_one_monitor_per_model(instrumented, workloads, otel, monkeypatch):
    """With the instrumentor's monitor attached the runner reuses it; without, it
    attaches its own for the accuracy pass only."""
    from opentelemetry_instrumentation_spikeformer.monitor import spike_monitor

    calls, seen = [], []
    real_monitor_model, real_read = spike_monitor.monitor_model, spike_monitor.SpikeMonitor.read

    def counting(model, *args, **kwargs):
        calls.append(model)
        return real_monitor_model(model, *args, **kwargs)

    def read(self):
        seen.append(len(spike_monitor.monitors_of(self._model())))
        return real_read(self)

    monkeypatch.setattr(spike_monitor, "monitor_model", counting)
    monkeypatch.setattr(spike_monitor.SpikeMonitor, "read", read)
    instrumentor = SpikeformerInstrumentor()
    if instrumented:
        instrumentor.instrument(tracer_provider=otel.tracer_provider,
                                meter_provider=otel.meter_provider)
    try:
        result = run_benchmark(BenchConfig(frameworks=("sinabs",), timesteps=(4, 8), **SMALL),
                               workloads=workloads, meter_provider=otel.meter_provider)
    finally:
        if instrumented:
            instrumentor.uninstrument()
    assert not result.errors
    assert len(calls) == (0 if instrumented else 2)
    assert seen and set(seen) == {1}


def test_reestimate_equals_a_monitor_on_that_table(workloads):
    import copy

    from opentelemetry_instrumentation_spikeformer.tools import digits
    from opentelemetry_instrumentation_spikeformer.monitor import energy, monitor_model

    ann, _ = workloads.ann("digits_cnn", 0, 15)
    snn = digits.convert_sinabs(copy.deepcopy(ann), 8)
    with monitor_model(snn, "a", hardware="cmos45nm") as low, \
            monitor_model(snn, "b", hardware="truenorth") as high:
        digits.run_sinabs(snn, workloads.data(0).x_test[:64], 8)
        low_snap, high_snap = low.read(), high.read()
    again = energy.reestimate(low_snap, energy.BUILTIN_TABLES["truenorth"])
    for key in ("snn_mj", "snn_total_mj"):
        assert again[key] == pytest.approx(high_snap["energy"][key], rel=1e-9), key
    assert again["ann_mj"] is again["ratio"] is high_snap["energy"]["ratio"] is None  # a chip
    assert energy.reestimate(low_snap, energy.BUILTIN_TABLES["cmos45nm"])["snn_mj"] == \
        pytest.approx(low_snap["energy"]["snn_mj"], rel=1e-12)


def test_a_failing_case_is_an_error_row_and_the_rest_still_runs(workloads, otel, monkeypatch,
                                                                 caplog):
    def boom(_ann, _data, _steps):
        raise RuntimeError("converter exploded\nsecond line")

    monkeypatch.setitem(FRAMEWORKS, "spikingjelly", replace(FRAMEWORKS["spikingjelly"],
                                                             convert=boom))
    with caplog.at_level(logging.WARNING):
        result = run_benchmark(BenchConfig(timesteps=(4,), **SMALL), workloads=workloads,
                               tracer_provider=otel.tracer_provider,
                               meter_provider=otel.meter_provider)
    (failed,) = result.errors
    assert (failed.framework, failed.error) == ("spikingjelly", "RuntimeError: converter exploded")
    assert [r.framework for r in result.rows if not r.error] == ["torch", "sinabs"]
    assert otel.value(bench_metrics.BENCHMARK_ERRORS.name, framework="spikingjelly",
                      **{"error.type": "RuntimeError"}) == 1
    (warning,) = [r for r in caplog.records if "converter exploded" in r.getMessage()]
    assert "\n" not in warning.getMessage()
    (root,) = otel.spans("spikeformer.benchmark")
    assert root.status.status_code.name == "ERROR"
    assert "FAILED digits_cnn spikingjelly: RuntimeError: converter exploded" in render_table(result)


def test_one_shot_command_exits_1_when_a_case_failed(monkeypatch, capsys):
    from opentelemetry_instrumentation_spikeformer.tools.bench import command

    def boom(_ann, _data, _steps):
        raise ValueError("no")

    monkeypatch.setitem(FRAMEWORKS, "sinabs", replace(FRAMEWORKS["sinabs"], convert=boom))
    code = command.main(["--models", "digits_mlp", "--frameworks", "sinabs", "--timesteps", "4",
                         "--epochs", "1", "--latency-samples", "2"])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED digits_mlp sinabs: ValueError: no" in out
    assert "digits_mlp  torch (ANN)" in out


def test_periodic_mode_exports_every_run_then_stops(workloads):
    exporter = ListExporter()
    # no timer of its own: every export here is one the runner flushed
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    provider = MeterProvider(metric_readers=[reader])
    stop, results = threading.Event(), []
    cfg = BenchConfig(frameworks=("sinabs",), timesteps=(4,), **{**SMALL, "latency_samples": 3})
    thread = threading.Thread(target=lambda: results.append(run_periodic(
        cfg, 1.0, stop=stop, on_result=results.append, meter_provider=provider,
        workloads=workloads)))
    thread.start()
    deadline = time.monotonic() + 120
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    stopped = time.monotonic()
    thread.join(timeout=60)
    assert not thread.is_alive() and time.monotonic() - stopped < 30
    *runs, count = results
    assert [r.run for r in runs] == list(range(1, count + 1)) and count >= 2
    exports = exporter.exports
    runs_seen = []
    for data in exports:
        metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
                   for m in sm.metrics}
        assert bench_metrics.BENCHMARK_ACCURACY.name in metrics
        runs_seen.append(metrics[bench_metrics.BENCHMARK_RUNS.name].data.data_points[0].value)
    assert len(exports) == count and runs_seen == list(range(1, count + 1))
    provider.shutdown()


def test_periodic_mode_stops_after_runs(workloads):
    cfg = BenchConfig(frameworks=("sinabs",), timesteps=(4,), **{**SMALL, "latency_samples": 2})
    provider = MeterProvider()
    assert run_periodic(cfg, 0.0, runs=2, meter_provider=provider, workloads=workloads) == 2
    provider.shutdown()


def test_plot_is_a_real_png(instrumented_run, tmp_path):
    import matplotlib.image

    result, _ = instrumented_run
    path = write_plot(result, str(tmp_path / "bench.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 500 <= width <= 2000 and 200 <= height <= 1500
    assert 10_000 < len(data) < 300_000
    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.05  # not a blank canvas


def test_trained_weights_are_cached_on_disk(tmp_path, caplog):
    import torch

    first = Workloads(str(tmp_path))
    model, how = first.ann("digits_mlp", 1, 1)
    assert how == "trained" and first.ann("digits_mlp", 1, 1) == (model, "reused")
    (path,) = tmp_path.iterdir()
    assert path.name == "digits_mlp-seed1-e1.pt"
    again, how = Workloads(str(tmp_path)).ann("digits_mlp", 1, 1)
    assert how == "loaded"
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        fresh, how = Workloads(str(tmp_path)).ann("digits_mlp", 1, 1)
    assert how == "trained" and "training instead" in caplog.text
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)  # seeded: the same weights as the first training


def test_bad_configuration_warns_and_falls_back(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = BenchConfig(models=("digits_cnn", "resnet"), frameworks=("snntorch",),
                          targets=("Loihi", "speck"), timesteps=tuple(range(1, 10)),
                          device="cuda:7" if _no_cuda() else "nonsense").resolved()
    assert cfg.models == ("digits_cnn",)
    assert cfg.frameworks == ("sinabs", "spikingjelly", "spikingjelly_sta", "spikingjelly_td")
    assert cfg.targets == ("loihi",)
    assert cfg.timesteps == (4, 8, 16, 32)
    assert cfg.device == "cpu"
    messages = [r.getMessage() for r in caplog.records]
    for word in ("'resnet'", "'snntorch'", "'speck'", "timesteps", "device"):
        assert sum(word in m for m in messages) >= 1, word
    assert all("\n" not in m for m in messages)


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


def test_the_bench_package_imports_no_torch():
    code = ("import sys\nimport opentelemetry_instrumentation_spikeformer.tools.bench\n"
            "import opentelemetry_instrumentation_spikeformer.tools.bench.command\n"
            "print(sorted(m for m in ('torch', 'sinabs', 'spikingjelly', 'sklearn', 'matplotlib')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
