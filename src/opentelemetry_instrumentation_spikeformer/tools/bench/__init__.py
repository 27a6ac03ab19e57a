"""Benchmark runner: accuracy after conversion, latency, throughput, energy per
inference and spike sparsity per model x framework x energy target x timesteps.

    from opentelemetry_instrumentation_spikeformer.bench import BenchConfig, run_benchmark
    result = run_benchmark(BenchConfig(models=("digits_cnn",), timesteps=(4, 8)))

Metrics go to the meter provider given (default: the global one), spans to the
tracer provider; ``spikeformer-otel bench`` is the command. Importing this
package imports no torch.
"""

from __future__ import annotations

from .runner import BenchResult, Row, run_benchmark, run_periodic
from .spec import FRAMEWORKS, BenchConfig
from .workloads import Workloads

__all__ = ["FRAMEWORKS", "BenchConfig", "BenchResult", "Row", "Workloads", "run_benchmark",
           "run_periodic"]
