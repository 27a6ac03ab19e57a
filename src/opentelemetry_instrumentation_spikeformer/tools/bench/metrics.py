"""Metric specs of the benchmark runner: accuracy after conversion, latency,
throughput, energy, synaptic operations and sparsity per model x framework x target."""

from __future__ import annotations

from ...core import attributes as a
from ...core.metrics import MetricSpec
from ...core.settings import MAX_SWEEP_TIMESTEPS  # noqa: F401 (the bound, for the runner)

NETWORK_ANN, NETWORK_SNN = "ann", "snn"
FRAMEWORK_TORCH = "torch"  # the framework value of the source ANN's rows
# ``timesteps`` is a metric attribute only here, and only because the sweep is a
# small configured set: the runner refuses more than MAX_SWEEP_TIMESTEPS values.
# Per-sample latency, 1 us ... 10 s.
LATENCY_BUCKETS_S = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Measured where the simulation ran: hardware_target is the torch device (cpu, cuda).
_ATTRS = (a.M_MODEL_NAME, a.M_FRAMEWORK, a.M_HARDWARE_TARGET, a.M_NETWORK, a.M_TIMESTEPS)
_SNN_ATTRS = (a.M_MODEL_NAME, a.M_FRAMEWORK, a.M_HARDWARE_TARGET, a.M_TIMESTEPS)  # SNN rows only

BENCHMARK_ACCURACY = MetricSpec(
    "spikeformer.benchmark.accuracy", "gauge", "1", "spikeformer_benchmark_accuracy", _ATTRS,
    "Test-set accuracy of the ANN (network=ann) and of its conversion (network=snn): "
    "model accuracy after conversion", "BENCHMARK_ACCURACY",
)
BENCHMARK_ACCURACY_DROP = MetricSpec(
    "spikeformer.benchmark.accuracy_drop", "gauge", "1", "spikeformer_benchmark_accuracy_drop",
    _SNN_ATTRS, "ANN accuracy minus SNN accuracy (negative when the SNN does better)",
)
BENCHMARK_LATENCY = MetricSpec(
    "spikeformer.benchmark.latency", "histogram", "s", "spikeformer_benchmark_latency_seconds",
    _ATTRS, "Wall time of one single-sample inference (all timesteps for an SNN)",
    "BENCHMARK_LATENCY", LATENCY_BUCKETS_S,
)
BENCHMARK_THROUGHPUT = MetricSpec(
    "spikeformer.benchmark.throughput", "gauge", "{sample}/s",
    "spikeformer_benchmark_throughput_per_second", _ATTRS,
    "Samples per second over the test set in batches", "BENCHMARK_THROUGHPUT",
)
BENCHMARK_ENERGY = MetricSpec(
    "spikeformer.benchmark.energy_per_inference", "gauge", "mJ",
    "spikeformer_benchmark_energy_per_inference_mJ", _ATTRS,
    "Estimated energy per inference under the energy table named by hardware_target "
    "(same model as spike_compiler.energy_estimate)", "BENCHMARK_ENERGY",
)
BENCHMARK_SYNOPS = MetricSpec(
    "spikeformer.benchmark.synops_per_inference", "gauge", "{synop}",
    "spikeformer_benchmark_synops_per_inference", _SNN_ATTRS,
    "Synaptic operations (SOPs) per inference of the SNN over the test set, as the spike "
    "monitor counts them (the count the energy estimate prices)",
)
BENCHMARK_SPARSITY = MetricSpec(
    "spikeformer.benchmark.sparsity", "gauge", "1", "spikeformer_benchmark_sparsity",
    _SNN_ATTRS, "Fraction of possible spikes not fired over the test set (the design's "
    "spike compression ratio)",
)
BENCHMARK_RUNS = MetricSpec(
    "spikeformer.benchmark.runs", "counter", "{run}", "spikeformer_benchmark_runs_total",
    (), "Finished benchmark runs, one-shot or periodic (failed cases: errors)",
)
BENCHMARK_ERRORS = MetricSpec(
    "spikeformer.benchmark.errors", "counter", "{error}", "spikeformer_benchmark_errors_total",
    (a.M_MODEL_NAME, a.M_FRAMEWORK, a.M_ERROR_TYPE),
    "Benchmark cases that failed (training, conversion or inference raised)",
)
BENCHMARK_METRICS: tuple[MetricSpec, ...] = (
    BENCHMARK_ACCURACY, BENCHMARK_ACCURACY_DROP, BENCHMARK_LATENCY, BENCHMARK_THROUGHPUT,
    BENCHMARK_ENERGY, BENCHMARK_SYNOPS, BENCHMARK_SPARSITY, BENCHMARK_RUNS, BENCHMARK_ERRORS,
)
