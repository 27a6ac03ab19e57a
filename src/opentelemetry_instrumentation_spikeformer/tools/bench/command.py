"""``spikeformer-otel bench``: benchmark models x frameworks x energy targets.

One-shot (default): one run, print the table, exit 0 (1 when a case failed,
130 when interrupted). Periodic (``--interval`` or
``OTEL_PYTHON_SPIKEFORMER_BENCH_INTERVAL`` > 0): a run every interval, each
exported at once; Ctrl-C or SIGTERM stops it cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Callable

from ...core import settings as config
from ..requirements import require
from ..sdk_setup import add_export_arguments, build_providers


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A config parser as an argparse type: a bad value is a usage error (exit 64)."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except config.BadValue as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _names(known: Callable[[], Any], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.lower() for name in config.parse_list(text))
        table = known()
        unknown = [n for n in names if n not in table]
        if unknown or not names:
            raise config.BadValue(f"unknown {what} {', '.join(unknown) or '(none)'} "
                                  f"(known: {', '.join(sorted(table))})")
        return names

    return _typed(parse)


def _parser(settings: config.Settings) -> argparse.ArgumentParser:
    from ...monitor import energy
    from ..cli import make_parser
    from .spec import FRAMEWORKS, MODELS

    p = make_parser("bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", type=_names(lambda: MODELS, "model"),
                   default=settings.bench_models, metavar="M,...",
                   help=f"models (default {','.join(settings.bench_models)})")
    p.add_argument("--frameworks", type=_names(lambda: FRAMEWORKS, "framework"),
                   default=settings.bench_frameworks, metavar="F,...",
                   help=f"converters (default {','.join(settings.bench_frameworks)})")
    p.add_argument("--targets", default=settings.bench_targets, metavar="TABLE,...",
                   type=_names(lambda: energy.tables(settings.energy_table), "energy table"),
                   help="energy tables to price each inference with "
                        f"(default {','.join(settings.bench_targets)})")
    p.add_argument("--timesteps", type=_typed(config.parse_timesteps),
                   default=settings.bench_timesteps, metavar="T,...",
                   help="timesteps sweep, at most 8 values "
                        f"(default {','.join(map(str, settings.bench_timesteps))})")
    p.add_argument("--interval", type=_typed(config.option("bench_interval").parse),
                   default=settings.bench_interval, metavar="SECONDS",
                   help="periodic mode: seconds between runs, start to start (default "
                        f"{settings.bench_interval:g}: one run)")
    p.add_argument("--runs", type=_typed(config.parse_positive_int), default=None, metavar="N",
                   help="periodic mode: stop after N runs (default: until Ctrl-C)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="write accuracy vs. energy per inference across timesteps to this PNG")
    p.add_argument("--epochs", type=_typed(config.parse_positive_int), default=15, metavar="N",
                   help="training epochs of each ANN (default 15)")
    p.add_argument("--snn-epochs", type=_typed(config.parse_positive_int), default=3,
                   metavar="N", help="training epochs of each directly trained SNN (default 3)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the data split, the initial weights and training (default 0)")
    p.add_argument("--latency-samples", type=_typed(config.parse_positive_int), default=50,
                   metavar="N", help="single-sample inferences timed per row (default 50)")
    p.add_argument("--batch-size", type=_typed(config.parse_positive_int), default=128,
                   metavar="N", help="batch size of the accuracy and throughput passes")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="load trained weights from DIR, train and save them there on a miss")
    p.add_argument("--prometheus", action="store_true",
                   help="serve /metrics on --host:--port while running")
    add_export_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    settings = config.load_settings()
    args = _parser(settings).parse_args(argv)
    from .spec import FRAMEWORKS, MODELS, BenchConfig

    # environment values may name unknown ones: the runner skips those with a warning
    packages = {FRAMEWORKS[f].package for f in args.frameworks if f in FRAMEWORKS}
    packages.update(MODELS[m].library for m in args.models if m in MODELS and MODELS[m].library)
    require("bench", ("opentelemetry.sdk", "torch", "sklearn",
                      *(["matplotlib"] if args.plot else []), *sorted(packages)))
    from ... import SpikeformerInstrumentor
    from .. import digits
    from .plot import write_plot
    from .report import render_table
    from .runner import run_benchmark, run_periodic

    digits.quiet_libraries()
    cfg = BenchConfig.from_settings(
        settings, models=args.models, frameworks=args.frameworks, targets=args.targets,
        timesteps=args.timesteps, epochs=args.epochs, snn_epochs=args.snn_epochs, seed=args.seed,
        latency_samples=args.latency_samples, batch_size=args.batch_size, device=args.device,
        cache_dir=args.cache_dir)
    sdk = build_providers("spikeformer-bench", otlp=args.otlp,
                          prometheus=(args.host, args.port) if args.prometheus else None)
    if sdk.prometheus_url:
        print(f"Prometheus metrics: {sdk.prometheus_url}", flush=True)
    if args.otlp:
        print(f"OTLP export to {args.otlp}", flush=True)
    instrumentor = SpikeformerInstrumentor()
    # conversion spans nest in each run's trace; the runner attaches its own monitors
    instrumentor.instrument(tracer_provider=sdk.tracer_provider,
                            meter_provider=sdk.meter_provider, spike_monitor=False)
    previous = _stop_on_sigterm()
    periodic = args.interval > 0
    failed = False

    def on_result(result) -> None:
        nonlocal failed
        failed = bool(result.errors)
        print(render_table(result), flush=True)
        if args.plot:
            print(f"plot: {write_plot(result, args.plot)}", flush=True)
        print(flush=True)

    providers = {"tracer_provider": sdk.tracer_provider, "meter_provider": sdk.meter_provider}
    code = 0
    try:
        if periodic:
            print(f"Benchmarking every {args.interval:g} s"
                  + (f", {args.runs} runs" if args.runs else "; Ctrl-C stops"), flush=True)
            run_periodic(cfg, args.interval, runs=args.runs, on_result=on_result, **providers)
        else:
            print("Benchmarking (one run; training and timing take a few seconds per model)",
                  flush=True)
            on_result(run_benchmark(cfg, **providers))
            code = 1 if failed else 0
    except KeyboardInterrupt:
        print("\nstopped" if periodic else "\ninterrupted before the run finished", flush=True)
        code = 0 if periodic else 130
    finally:
        if previous:  # a second Ctrl-C must not cut the final flush short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        instrumentor.uninstrument()
        sdk.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def _stop_on_sigterm() -> dict[int, Any]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does; returns the handlers to
    restore (none when not on the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
