"""Soak: memory and collection time over many conversions whose models are dropped.

    .venv/bin/python benchmarks/soak.py [--conversions 2000] [--bare 500] [--every 100]

A sweep converts (sinabs, and spikingjelly every fourth time), runs one
forward of each converted model and drops it, with the spike monitor
auto-attached as under ``opentelemetry-instrument``; every ``--every``
conversions it runs one metric collection. Printed per window: RSS, its growth
since the first window, the collection time and how many monitors that
collection read. The same sweep without the plugin (``--bare`` conversions, run
first) gives the libraries' own RSS growth for comparison.

Goals (issue 11): RSS growth <= 20 MB over 2,000 conversions, collection time
flat (it must not grow with models already deleted).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import psutil  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from models import INPUT_SHAPE, calibration_batches, tiny_cnn  # noqa: E402
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor  # noqa: E402

MB = 1 << 20


class DropExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def convert_and_run(i: int) -> None:
    import sinabs
    import torch
    from spikingjelly.activation_based import ann2snn, functional

    with torch.random.fork_rng():
        torch.manual_seed(0)  # a CNN whose layers all fire (calibration rejects a dead one)
        ann = tiny_cnn()
    if i % 4 == 3:
        recipe = ann2snn.RateCodingRecipe(dataloader=calibration_batches(1, 4))
        model = ann2snn.Converter(recipe).convert(ann)
    else:
        model = sinabs.from_model(ann, input_shape=INPUT_SHAPE, batch_size=1).spiking_model
    with torch.no_grad():
        model(torch.rand(2, *INPUT_SHAPE) * 4)
    functional.reset_net(model)
    del model  # dropped, as a sweep drops the models it has scored


def sweep(count: int, every: int, collect) -> list[tuple[int, float, float, int]]:
    """(conversions, RSS bytes, collection seconds, monitors read) per window."""
    process = psutil.Process()
    rows = []
    for i in range(count):
        convert_and_run(i)
        if (i + 1) % every == 0:
            started = time.perf_counter()
            read = collect()
            rows.append((i + 1, process.memory_info().rss, time.perf_counter() - started, read))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversions", type=int, default=2000)
    parser.add_argument("--bare", type=int, default=500, help="conversions without the plugin")
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()

    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import SpikeMonitor

    reads = []
    real_read = SpikeMonitor.read

    def counting_read(self):
        reads.append(1)
        return real_read(self)

    SpikeMonitor.read = counting_read
    convert_and_run(0), convert_and_run(3)  # imports, first-call caches
    bare = sweep(args.bare, args.every, lambda: 0)

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    SpikeformerInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)

    def collect() -> int:
        reads.clear()
        reader.get_metrics_data()
        return len(reads)

    rows = sweep(args.conversions, args.every, collect)
    SpikeformerInstrumentor().uninstrument()
    tp.shutdown()
    mp.shutdown()

    print(f"{'conversions':>11}  {'RSS MB':>8}  {'growth MB':>9}  {'collect ms':>10}  {'monitors read':>13}")
    first_rss = rows[0][1]
    for n, rss, seconds, read in rows:
        print(f"{n:>11}  {rss / MB:>8.1f}  {(rss - first_rss) / MB:>9.1f}  {seconds * 1000:>10.2f}"
              f"  {read:>13}")
    gc.collect()
    growth = (rows[-1][1] - rows[0][1]) / MB
    bare_growth = (bare[-1][1] - bare[0][1]) / MB if len(bare) > 1 else float("nan")
    span = rows[-1][0] - rows[0][0]
    bare_span = bare[-1][0] - bare[0][0] if len(bare) > 1 else 0
    head = sorted(s for _, _, s, _ in rows[:5])
    tail = sorted(s for _, _, s, _ in rows[-5:])
    head_ms, tail_ms = head[len(head) // 2] * 1000, tail[len(tail) // 2] * 1000
    print()
    print(f"RSS growth, instrumented: {growth:+.1f} MB over {span} conversions "
          f"(goal <= 20 MB over 2,000)")
    if bare_span:
        print(f"RSS growth, no plugin:    {bare_growth:+.1f} MB over {bare_span} conversions")
    print(f"collection time, median of the first 5 windows {head_ms:.2f} ms, of the last 5 "
          f"{tail_ms:.2f} ms: ratio {tail_ms / head_ms:.2f} (flat: about 1)")
    print(f"monitors read per collection: at most {max(r for *_, r in rows)} "
          f"(models are dropped as the sweep goes)")


if __name__ == "__main__":
    main()
