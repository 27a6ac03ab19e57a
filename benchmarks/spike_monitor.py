"""Forward-time overhead of the spike monitor vs sinabs' SNNAnalyzer, side by side.

A sinabs spiking CNN (T=16, batch 32) runs bare, with ``monitor_model`` and
with ``sinabs.SNNAnalyzer`` attached; the runs are interleaved and the medians
compared as ratios to bare. Then the cost of one metric collection for a
model with 256 spiking layers (``read()`` alone and a full SDK collection).

    .venv/bin/python benchmarks/spike_monitor.py [--repeats 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings


def spiking_cnn(batch: int, steps: int):
    import sinabs
    import torch.nn as nn

    ann = nn.Sequential(
        nn.Conv2d(2, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10), nn.ReLU(),
    )
    return sinabs.from_model(ann, input_shape=(2, 32, 32), batch_size=batch,
                             num_timesteps=steps).spiking_model


def deep_snn(layers: int):
    import sinabs.layers as sl
    import torch.nn as nn

    parts = []
    for _ in range(layers):
        parts += [nn.Linear(32, 32), sl.IAFSqueeze(batch_size=4)]
    return nn.Sequential(*parts)


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def overhead(args) -> None:
    import sinabs
    import torch

    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    torch.manual_seed(0)
    batch, steps = 32, 16
    base = spiking_cnn(batch, steps).to(args.device)
    models = {name: copy.deepcopy(base) for name in ("bare", "monitor", "monitor/4", "snnanalyzer")}
    x = (torch.rand(batch * steps, 2, 32, 32, device=args.device) < 0.3).float()
    mon = monitor_model(models["monitor"], "bench")
    mon4 = monitor_model(models["monitor/4"], "bench4", sample_every=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = sinabs.SNNAnalyzer(models["snnanalyzer"])
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():  # warm-up (and the monitor's discovery pass)
            model(x)
        for _ in range(args.repeats):
            for name, model in models.items():
                for layer in model.modules():
                    if hasattr(layer, "reset_states"):
                        layer.reset_states()
                if args.device != "cpu":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(x)
                if args.device != "cpu":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["bare"])
    print(f"spiking CNN, sinabs IAFSqueeze, T={steps}, batch={batch}, device={args.device}, "
          f"{args.repeats} interleaved runs, torch threads={torch.get_num_threads()}")
    print(f"{'variant':<24}{'median ms':>10}{'vs bare':>10}")
    for name in models:
        med = statistics.median(times[name])
        print(f"{name:<24}{med * 1e3:>10.2f}{med / bare:>10.3f}")
    snap = mon.read()
    stats = analyzer.get_model_statistics()
    print(f"last-forward check: monitor synops/sample (spiking layers) "
          f"{sum(r['synops'] for r in snap['layers']) / snap['inferences']:.0f}; "
          f"SNNAnalyzer synops incl. input layer {float(stats['synops']):.0f}")
    del mon4


def collection(args) -> None:
    import torch
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    layers = 256
    model = deep_snn(layers).to(args.device)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    mon = monitor_model(model, "deep", meter_provider=provider)
    x = torch.rand(4 * 4, 32, device=args.device) * 4
    with torch.no_grad():
        model(x)
        read_s = timed(mon.read, args.repeats)
        reader.get_metrics_data()  # first collection builds the attribute sets

        def collect():
            model(x)  # new data each cycle, so every gauge and the histogram report
            start = time.perf_counter()
            reader.get_metrics_data()
            return time.perf_counter() - start

        collect_s = statistics.median(collect() for _ in range(args.repeats))
    print(f"collection, {layers} spiking layers: read() {read_s * 1e3:.2f} ms, "
          f"full SDK collection (6 instruments + membrane histogram) {collect_s * 1e3:.2f} ms")
    provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    overhead(args)
    collection(args)


if __name__ == "__main__":
    main()
