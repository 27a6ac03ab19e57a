"""The benchmark runner's transformer workload on real data: a tiny ViT trained on
the digits (16 x 16) and converted with spikingjelly's STA and TD-equivalent
recipes, and spikingjelly's Spikformer and Spike-driven Transformer trained
directly as SNNs, under the instrumentor (conversion spans nest in the run)."""

from __future__ import annotations

import pytest
from conftest import Telemetry

import torch
import spikingjelly  # noqa: F401
import sklearn  # noqa: F401

from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor  # noqa: E402
from opentelemetry_instrumentation_spikeformer.tools.bench import (  # noqa: E402
    BenchConfig,
    Workloads,
    run_benchmark,
)
from opentelemetry_instrumentation_spikeformer.tools.bench import metrics as bm  # noqa: E402
from opentelemetry_instrumentation_spikeformer.tools.bench.plot import write_plot  # noqa: E402
from opentelemetry_instrumentation_spikeformer.tools.bench.report import render_table  # noqa: E402

TEST_DIGITS = 450
# Guessing among ten classes scores 10 % with a binomial sd of 1.4 points on 450
# digits: 20 % is seven sd above chance, a score no untrained network reaches.
BEATS_CHANCE = 0.20
TIMESTEPS = (4, 8)
DIRECT = ("digits_sdt", "digits_spikformer")
CONFIG = dict(models=("digits_vit", *DIRECT), timesteps=TIMESTEPS, targets=("cmos45nm",),
              snn_epochs=3, latency_samples=3, min_throughput_s=0.02)


@pytest.fixture(scope="module")
def run():
    """One instrumented run on one torch thread (tiny models: more threads only
    contend on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tel = Telemetry()
    instrumentor = SpikeformerInstrumentor()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    try:
        result = run_benchmark(BenchConfig(**CONFIG), workloads=Workloads(),
                               tracer_provider=tel.tracer_provider,
                               meter_provider=tel.meter_provider)
    finally:
        instrumentor.uninstrument()
        torch.set_num_threads(threads)
    yield result, tel
    tel.shutdown()


def _rows(result, model, framework):
    return {r.timesteps: r for r in result.rows if r.model == model and r.framework == framework}


def test_rows_of_the_transformer_workload(run):
    result, _ = run
    assert not result.errors, [r.error for r in result.errors]
    assert result.test_samples == TEST_DIGITS
    (ann,) = _rows(result, "digits_vit", "torch").values()
    assert ann.accuracy > 0.8  # an ANN: far above BEATS_CHANCE (measured 93-96 %)
    sta, td = _rows(result, "digits_vit", "spikingjelly_sta"), _rows(
        result, "digits_vit", "spikingjelly_td")
    assert sorted(sta) == sorted(td) == list(TIMESTEPS)
    for row in td.values():  # TD operators are exact at any T: the ANN's answers
        assert abs(row.accuracy - ann.accuracy) <= 1 / TEST_DIGITS
    for row in sta.values():  # spiking encoders approximate it, calibrated for each T
        assert row.accuracy > BEATS_CHANCE
        assert row.accuracy_drop == pytest.approx(ann.accuracy - row.accuracy)
    assert sta[8].accuracy > ann.accuracy - 0.05
    for name in DIRECT:  # trained directly: no ANN row, no conversion, no drop
        assert not _rows(result, name, "torch")
        rows = _rows(result, name, "spikingjelly")
        assert sorted(rows) == list(TIMESTEPS)
        for row in rows.values():
            assert row.accuracy > BEATS_CHANCE, (name, row.accuracy)
            assert row.accuracy_drop is None
            assert len(row.latency_s) == CONFIG["latency_samples"] and row.throughput > 0


def test_directly_trained_snns_report_synops_and_energy(run):
    result, tel = run
    points = {(p.attributes["model_name"], p.attributes["timesteps"]): p.value
              for p in tel.points(bm.BENCHMARK_SYNOPS.name)}
    for name in DIRECT:
        rows = _rows(result, name, "spikingjelly")
        for steps, row in rows.items():
            assert row.synops > 0 and row.energy_mj["cmos45nm"] > 0
            assert 0 < row.sparsity < 1
            assert points[(name, steps)] == pytest.approx(row.synops)
        # the same weights over more timesteps: more spikes, more synaptic operations
        assert rows[8].synops > rows[4].synops
        assert rows[8].energy_mj["cmos45nm"] > rows[4].energy_mj["cmos45nm"]


def test_converted_transformers_report_synops_and_energy(run):
    result, _ = run
    for framework in ("spikingjelly_sta", "spikingjelly_td"):
        for row in _rows(result, "digits_vit", framework).values():
            assert row.synops > 0 and row.energy_mj["cmos45nm"] > 0, (framework, row.timesteps)
    (ann,) = _rows(result, "digits_vit", "torch").values()
    assert ann.energy_mj["cmos45nm"] > 0


def test_sta_converts_once_per_timesteps_and_its_spans_nest(run):
    result, tel = run
    converts = [s for s in tel.spans("spikeformer.benchmark.convert")]
    by_framework = {}
    for span in converts:
        by_framework.setdefault(span.attributes["spikeformer.framework"], []).append(span)
    assert sorted(s.attributes["spikeformer.snn.timesteps"]
                  for s in by_framework["spikingjelly_sta"]) == list(TIMESTEPS)
    assert len(by_framework["spikingjelly_td"]) == 1  # exact for any T: converted once
    assert set(by_framework) == {"spikingjelly_sta", "spikingjelly_td"}  # direct SNNs: none
    recipes = {"spikingjelly_sta": "STATransformerRecipe",
               "spikingjelly_td": "TransformerTDEquivalentRecipe"}
    for span in converts:
        (inner,) = [s for s in tel.spans("spikeformer.convert spikingjelly")
                    if s.parent.span_id == span.context.span_id]
        assert inner.attributes["spikeformer.recipe"] == recipes[
            span.attributes["spikeformer.framework"]]
        assert inner.attributes["spikeformer.model.transformer.layers"] == 1
        if "spikeformer.snn.timesteps" in span.attributes:
            assert inner.attributes["spikeformer.snn.timesteps"] == span.attributes[
                "spikeformer.snn.timesteps"]
    trains = {s.attributes["spikeformer.model.name"] for s in tel.spans("spikeformer.benchmark.train")}
    assert trains == {"digits_vit", *DIRECT}
    sizes = [s.attributes["spikeformer.benchmark.image_size"]
             for s in tel.spans("spikeformer.benchmark.load_data")]
    assert sizes == [16]  # loaded once for the three models


def test_table_and_plot(run, tmp_path):
    import matplotlib.image

    result, _ = run
    table = render_table(result).splitlines()
    header = next(line for line in table if line.startswith("model "))
    assert "SOPs/inf" in header.split()
    for name in DIRECT:
        for row in _rows(result, name, "spikingjelly").values():
            line = next(line for line in table
                        if line.split()[:3] == [name, "spikingjelly", str(row.timesteps)])
            assert f"{row.accuracy * 100:.1f}%" in line and f"{row.synops:,.0f}" in line
    path = write_plot(result, str(tmp_path / "bench.png"))
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 300 and pixels.std() > 0.05
