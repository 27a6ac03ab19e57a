"""Forward-time overhead of the spike monitor, side by side with a minimal
per-layer ``o.sum()`` hook, sinabs' SNNAnalyzer and spikingjelly's dispatch
counter (``SynOpCounter`` under ``DispatchCounterMode``).

1. A sinabs spiking CNN (T=16, batch 32): bare, ``monitor_model``, one in four
   forwards monitored, ``sinabs.SNNAnalyzer``.
2. spikingjelly's Spikformer, Spike-driven Transformer and QKFormer (tiny
   configs, T=4) at batch 1, 8 and 32: bare, a second bare copy (the noise
   floor), an ``o.sum()`` hook on every spiking layer and the monitor (rounds of
   their own, four times as many), then bare, SNNAnalyzer and SynOpCounter;
   plus the hook work alone (the monitor's per-forward work
   replayed on one forward's real outputs, against one ``o.sum()`` per layer),
   which is less noisy than end-to-end ratios.
3. The cost of one metric collection for a model with 256 spiking layers.

Runs are interleaved in a fresh random order each round, each variant on its
own deep copy; reported: the median over rounds of (variant / bare of the same
round), timed in thread CPU time (with one torch thread all the work is on this
thread, so other load on the machine distorts less than wall time).

    .venv/bin/python benchmarks/spike_monitor.py [--part all|cnn|transformers|collection]
        [--rounds 15] [--batches 1,8,32] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
import warnings
from pathlib import Path


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


def transformers(args) -> None:
    """Part 2: the three spiking transformers at each batch size."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import dataflow_models as M

    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    print(f"spiking transformers (spikingjelly 2.0.0, tiny configs, T={M.T}), device="
          f"{args.device}, {args.rounds * OVERHEAD_ROUNDS} rounds of bare, copy, o.sum() and "
          f"monitor, {args.rounds} of bare and the profilers, "
          f"torch threads={torch.get_num_threads()}, "
          f"clock={clock.__name__}")
    header = (f"{'model':<11}{'B':>3}{'bare ms':>9}{'copy':>7}{'o.sum()':>9}{'monitor':>9}"
              f"{'SNNAnalyzer':>12}{'SynOpCounter':>13}   hook work alone, monitor / o.sum(); "
              f"the same with the cost of reaching it (taps and hooks)")
    print(header)
    for name, build in M.TRANSFORMERS.items():
        base = build().to(args.device)
        for batch in args.batches:
            row = _transformer_row(M, name, base, batch, args, clock)
            print(row, flush=True)


OVERHEAD_ROUNDS = 4  # rounds of bare / copy / o.sum() / monitor per profiler round


def _transformer_row(M, name, base, batch, args, clock) -> str:
    import sinabs
    import torch
    from spikingjelly.activation_based import functional, neuron, op_counter

    from opentelemetry_instrumentation_spikeformer.monitor import monitor_model

    variants = ["bare", "copy", "o.sum()", "monitor", "SNNAnalyzer", "SynOpCounter"]
    models = {v: copy.deepcopy(base) for v in variants}
    for module in models["o.sum()"].modules():
        if isinstance(module, neuron.BaseNode):  # the floor: one reduction, nothing kept
            module.register_forward_hook(lambda _m, _a, out: (out.sum(), None)[1])
    monitor = monitor_model(models["monitor"], name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzer = sinabs.SNNAnalyzer(models["SNNAnalyzer"])  # noqa: F841 (its hooks live with it)
    synops = op_counter.SynOpCounter()
    x = M.image(1, batch=batch).to(args.device)

    def run(variant: str) -> float:
        model = models[variant]
        sync(args.device)
        start = clock()
        with torch.no_grad():
            if variant == "SynOpCounter":
                with op_counter.DispatchCounterMode([synops]):
                    model(x)
            else:
                model(x)
        sync(args.device)
        spent = clock() - start
        functional.reset_net(model)
        return spent

    failed = set()
    for variant in list(variants):  # warm-up; the monitor's first forward is its discovery pass
        try:
            run(variant)
            run(variant)
        except Exception:  # SNNAnalyzer on spikingjelly's multi-step 5-D convs
            failed.add(variant)
            variants.remove(variant)
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    bare: list[float] = []
    rng = random.Random(batch)
    # The overhead variants get their own rounds, OVERHEAD_ROUNDS times as many:
    # their differences are a few percent, and the profilers (2-5x a forward)
    # between them would stir the caches and the allocator.
    cheap = [v for v in variants if v in ("bare", "copy", "o.sum()", "monitor")]
    dear = ["bare"] + [v for v in variants if v not in cheap]
    for order, rounds in ((cheap, args.rounds * OVERHEAD_ROUNDS), (dear, args.rounds)):
        for _ in range(rounds if len(order) > 1 else 0):
            rng.shuffle(order)
            spent = {v: run(v) for v in order}
            if order is cheap:
                bare.append(spent["bare"])
            for v in order:
                if v != "bare" or order is cheap:
                    ratios[v].append(spent[v] / spent["bare"])
    mine, floor, layers, captures = _hook_work(monitor, models["monitor"], x, clock)
    hook, tap = _hook_dispatch(clock)
    # reaching the work: the monitor has a call tap per layer, a forward hook per
    # captured module (torch's own pools) and two on the model; o.sum() a
    # forward hook per layer
    with_mine = mine + layers * tap + (captures + 2) * hook
    with_floor = floor + layers * hook
    monitor.detach()
    med = {v: f"{statistics.median(r):.3f}" for v, r in ratios.items()}
    med.update({v: "fails" for v in failed})
    return (f"{name:<11}{batch:>3}{statistics.median(bare) * 1e3:>9.2f}{med['copy']:>7}"
            f"{med['o.sum()']:>9}{med['monitor']:>9}{med['SNNAnalyzer']:>12}"
            f"{med['SynOpCounter']:>12}x   {mine * 1e6:.0f} us / {floor * 1e6:.0f} us "
            f"({mine / floor:.1f}x; {mine / statistics.median(bare) * 100:.1f} % / "
            f"{floor / statistics.median(bare) * 100:.1f} % of bare); reached "
            f"{with_mine * 1e6:.0f} us / {with_floor * 1e6:.0f} us ({with_mine / with_floor:.1f}x; "
            f"{with_mine / statistics.median(bare) * 100:.1f} % of bare)")


def _hook_work(monitor, model, x, clock) -> tuple[float, float, int, int]:
    """Per forward: the monitor's counting replayed through its hooks on one
    forward's real outputs (no model compute, no hook dispatch), one ``o.sum()``
    per spiking layer, the number of layers and of captured modules."""
    import torch
    from spikingjelly.activation_based import functional

    topo = monitor.topology
    tally = next(iter(topo.tallies.values()))
    sources = [layer.module() for layer in topo._layer_ids.values()]
    pools = [leaf.capture[0]() for leaf in tally.plan.leaves if leaf.capture is not None]
    seen: list[tuple] = []
    handles = [m.register_forward_hook(lambda m, _a, out: seen.append((topo._source_hook, m, out)))
               for m in sources if m is not None]
    handles += [m.register_forward_hook(lambda m, _a, out: seen.append((topo._capture_hook, m, out)))
                for m in set(pools) if m is not None]
    with torch.no_grad():
        model(x)
    functional.reset_net(model)
    for handle in handles:
        handle.remove()
    outputs = [out for hook, _, out in seen if hook == topo._source_hook]

    def replay() -> None:
        topo.current = tally
        tally.begin()
        for hook, module, out in seen:
            hook(module, None, out)
        topo._finish_forward(None)

    def sums() -> None:
        for out in outputs:
            out.sum()

    return _best(replay, clock), _best(sums, clock), len(outputs), len(seen) - len(outputs)


def _hook_dispatch(clock) -> tuple[float, float]:
    """What it costs to reach a Python function that does nothing after a
    module's call: through a forward hook, through the monitor's call tap."""
    import torch

    from opentelemetry_instrumentation_spikeformer.monitor import hooks

    plain, hooked, tapped = torch.nn.Identity(), torch.nn.Identity(), torch.nn.Identity()
    hooked.register_forward_hook(lambda _m, _a, _o: None)
    hooks.call_tap(tapped, lambda _m, _a, _o: None)
    x = torch.zeros(1)
    base = _best(lambda: plain(x), clock, 2000)
    return (max(0.0, _best(lambda: hooked(x), clock, 2000) - base),
            max(0.0, _best(lambda: tapped(x), clock, 2000) - base))


def _best(fn, clock, reps: int = 50, trials: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(trials):
        start = clock()
        for _ in range(reps):
            fn()
        best = min(best, (clock() - start) / reps)
    return best


def sync(device: str) -> None:
    if device != "cpu":
        import torch

        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "cnn", "transformers", "collection"),
                        default="all")
    parser.add_argument("--repeats", type=int, default=30, help="rounds of the CNN part")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per transformer row")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.part in ("all", "cnn"):
        overhead(args)
    if args.part in ("all", "transformers"):
        transformers(args)
    if args.part in ("all", "collection"):
        collection(args)


if __name__ == "__main__":
    main()
