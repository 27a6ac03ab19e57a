"""Per-call overhead of an instrumented call vs the plain call, side by side.

    .venv/bin/python benchmarks/overhead.py [--calls N]

Measures, in one run and interleaved: a trivial conversion function (pure
instrumentation cost, in microseconds) and a real sinabs.from_model on a small
CNN (relative cost). "instrumented" uses the SDK with a batch span processor
and a metric reader, as a real deployment would.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

import pipeline_kit  # noqa: E402
from models import INPUT_SHAPE, tiny_cnn  # noqa: E402
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor  # noqa: E402


class DropExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def timed(fn, n):
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def measure(fn, n, rounds):
    """Median per-call time bare and instrumented, interleaved in rounds."""
    inst = SpikeformerInstrumentor()
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    bare, wrapped = [], []
    for _ in range(rounds):
        bare.append(timed(fn, n))
        inst.instrument(tracer_provider=tp, meter_provider=mp,
                        extra_targets=pipeline_kit.EXTRA_TARGETS, spike_monitor=False)
        wrapped.append(timed(fn, n))
        inst.uninstrument()
    tp.shutdown()
    mp.shutdown()
    return statistics.median(bare), statistics.median(wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import sinabs

    model = tiny_cnn()
    rows = [
        ("trivial conversion fn", lambda: pipeline_kit.convert(model), args.calls),
        ("sinabs.from_model (small CNN)",
         lambda: sinabs.from_model(model, input_shape=INPUT_SHAPE, batch_size=1),
         max(20, args.calls // 50)),
    ]
    print(f"{'call':32} {'plain':>12} {'instrumented':>14} {'overhead':>12} {'ratio':>7}")
    for name, fn, n in rows:
        bare, inst = measure(fn, n, args.rounds)
        print(f"{name:32} {bare * 1e6:10.1f}us {inst * 1e6:12.1f}us "
              f"{(inst - bare) * 1e6:10.1f}us {inst / bare:7.2f}")


if __name__ == "__main__":
    main()
