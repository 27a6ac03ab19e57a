"""Forward-time overhead of the spike monitor vs sinabs' SNNAnalyzer, side by side.

A sinabs spiking CNN (T=16, batch 32) runs bare, with ``monitor_model`` and
with ``sinabs.SNNAnalyzer`` attached; the runs are interleaved and the medians
compared as ratios to bare. Then the cost of one metric collection for a
model with 256 spiking layers (``read()`` alone and a full SDK collection).

    .venv/bin/python benchmarks/spike_monitor.py [--repeats 30] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import random
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
    # "bare (copy)" is a second unmonitored model: its ratio shows the noise floor.
    models = {name: copy.deepcopy(base) for name in ("bare", "bare (copy)", "monitor",
                                                     "monitor 1-in-4", "SNNAnalyzer")}
    x = (torch.rand(batch * steps, 2, 32, 32, device=args.device) < 0.3).float()
    mon = monitor_model(models["monitor"], "bench")
    monitor_model(models["monitor 1-in-4"], "bench4", sample_every=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = sinabs.SNNAnalyzer(models["SNNAnalyzer"])
    times: dict[str, list[float]] = {name: [] for name in models}
    ratios: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    rng = random.Random(0)

    def run(model) -> float:
        for layer in model.modules():
            if hasattr(layer, "reset_states"):
                layer.reset_states()
        if args.device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if args.device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.no_grad():
        for model in models.values():  # warm-up (and the monitor's discovery pass)
            run(model)
        for _ in range(args.repeats):
            rng.shuffle(order)  # interleaved, in a fresh order each round
            round_times = {name: run(models[name]) for name in order}
            for name, seconds in round_times.items():
                times[name].append(seconds)
                ratios[name].append(seconds / round_times["bare"])
    print(f"spiking CNN (sinabs IAFSqueeze, 3 conv + 1 linear), T={steps}, batch={batch}, "
          f"device={args.device}, {args.repeats} rounds, torch threads={torch.get_num_threads()}")
    print(f"{'variant':<18}{'median ms':>11}{'median ratio to bare (paired)':>32}")
    for name in models:
        print(f"{name:<18}{statistics.median(times[name]) * 1e3:>11.2f}"
              f"{statistics.median(ratios[name]):>32.3f}")
    snap = mon.read()
    stats = analyzer.get_model_statistics()
    ours = sum(r["synops"] for r in snap["layers"]) / snap["forwards"] / batch
    print(f"check, last forward: monitor synops/sample {ours:.0f} (spike-driven layers); "
          f"SNNAnalyzer {float(stats['synops']):.0f} (adds the input layer's)")


def collection(args) -> None:
    import torch
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    layers = 256
    model = deep_snn(layers).to(args.device)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    mon = monitor_model(model, "deep", meter_provider=provider)
    x = torch.rand(4 * 4, 32, device=args.device) * 4

    # The SDK's own cost for the same number of per-layer points, for scale.
    floor_reader = InMemoryMetricReader()
    floor_provider = MeterProvider(metric_readers=[floor_reader])
    meter = floor_provider.get_meter("floor")
    attrs = [{"model_name": "deep", "layer_name": str(i), "neuron_type": "IAFSqueeze"}
             for i in range(layers)]
    for n in range(4):
        meter.create_observable_gauge(f"floor{n}", callbacks=[
            lambda _o: [Observation(1.0, a) for a in attrs]])

    def collect(which) -> float:
        model(x)  # new data each cycle, so every gauge and the histogram report
        start = time.perf_counter()
        which.get_metrics_data()
        return time.perf_counter() - start

    with torch.no_grad():
        model(x)
        read_s = timed(mon.read, args.repeats)
        reader.get_metrics_data()  # the first collection builds the attribute sets
        floor_reader.get_metrics_data()
        full, floor = [], []
        for _ in range(args.repeats):
            full.append(collect(reader))
            floor.append(collect(floor_reader))
    full_s, floor_s = statistics.median(full), statistics.median(floor)
    print(f"collection, {layers} spiking layers: read() {read_s * 1e3:.2f} ms (one transfer); "
          f"full SDK collection {full_s * 1e3:.2f} ms, of which the SDK needs "
          f"{floor_s * 1e3:.2f} ms for {4 * layers} bare observations")
    provider.shutdown()
    floor_provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overhead(args)
    collection(args)


if __name__ == "__main__":
    main()
