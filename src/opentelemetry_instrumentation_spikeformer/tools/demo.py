"""``spikeformer-otel demo``: a small real pipeline that shows the telemetry.

Trains a small CNN on scikit-learn's bundled digits, converts it with sinabs and
spikingjelly, runs spiking inference (the spike monitor attaches itself to the
converted models), compiles for Speck (NIR export here; the DYNAP-CNN chip
configuration only when SynSense's real samna is installed), maps a small PyNN
network onto a virtual SpiNNaker board (when the extra [spinnaker] is
installed), then shows what
OpenTelemetry captured: a readable summary on the console (default), a
Prometheus endpoint on localhost:9464, and/or OTLP to a collector.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any, Callable

from ..core import attributes as a
from ..devices.samna_probe import real_samna_installed
from .requirements import require
from .sdk_setup import add_export_arguments, build_providers



def _parser() -> argparse.ArgumentParser:
    from .cli import make_parser

    p = make_parser("demo", description=__doc__.splitlines()[0])
    p.add_argument("--exporter", choices=("console", "prometheus", "none"), default="console",
                   help="console: summary of spans and metrics (default); prometheus: serve "
                        "/metrics on --host:--port until Ctrl-C or --serve seconds")
    p.add_argument("--serve", type=float, default=None, metavar="SECONDS",
                   help="with --exporter prometheus: stop serving after this many seconds")
    add_export_arguments(p)
    p.add_argument("--timesteps", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    return p


class Progress:
    """One line per stage: ``[2/6] Converting with sinabs ... done (27 ms)``."""

    def __init__(self, total: int, out=sys.stdout) -> None:
        self.total, self.step, self.out = total, 0, out

    def run(self, title: str, fn: Callable[[], Any], result: Callable[[Any], str] = lambda r: "done"):
        self.step += 1
        print(f"[{self.step}/{self.total}] {title} ...", end=" ", flush=True, file=self.out)
        start = time.perf_counter()
        value = fn()
        ms = (time.perf_counter() - start) * 1000
        print(f"{result(value)} ({ms:.0f} ms)", flush=True, file=self.out)
        return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require("demo", ("opentelemetry.sdk", "torch", "sklearn", "sinabs", "spikingjelly"))
    from .. import SpikeformerInstrumentor
    from ..devices.instrumentor import SpikeformerDevicesInstrumentor
    from . import digits

    digits.quiet_libraries()
    sdk = build_providers("spikeformer-demo", otlp=args.otlp, prometheus=(
        (args.host, args.port) if args.exporter == "prometheus" else None))
    url = sdk.prometheus_url
    if url:
        print(f"Prometheus metrics: {url}")
    if args.otlp:
        print(f"OTLP export to {args.otlp}")
    instrumentors = (SpikeformerInstrumentor(), SpikeformerDevicesInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=sdk.tracer_provider,
                                meter_provider=sdk.meter_provider)
    speck = real_samna_installed()
    progress = Progress(7)
    try:
        data = progress.run("Loading scikit-learn digits", digits.load_digits,
                            lambda d: f"{len(d.y_train)} train / {len(d.y_test)} test images")
        model = progress.run(
            f"Training a small CNN ({args.epochs} epochs)",
            lambda: digits.train(digits.build_cnn(), data, epochs=args.epochs),
            lambda m: f"ANN accuracy {digits.ann_accuracy(m, data):.1%}")
        network = progress.run(
            "Converting with sinabs", lambda: digits.convert_sinabs(copy.deepcopy(model), args.timesteps),
            lambda n: f"{_spiking_layers(n.spiking_model)} spiking layers")
        jelly = progress.run(
            "Converting with spikingjelly (rate coding, calibrated)",
            lambda: digits.convert_spikingjelly(copy.deepcopy(model), data),
            lambda n: f"{_spiking_layers(n)} spiking layers")
        progress.run(
            f"Spiking inference, T={args.timesteps}, {len(data.y_test)} test digits",
            lambda: (digits.accuracy(digits.run_sinabs(network, data.x_test, args.timesteps), data.y_test),
                     digits.accuracy(digits.run_spikingjelly(jelly, data.x_test, args.timesteps),
                                     data.y_test)),
            lambda accs: f"sinabs {accs[0]:.1%}, spikingjelly {accs[1]:.1%}")
        progress.run("Compiling for Speck", lambda: _compile(network, speck, args.timesteps),
                     lambda text: text)
        progress.run("Mapping a PyNN network onto a virtual SpiNNaker board", _map_spinnaker,
                     lambda text: text)
        # Collect while still instrumented: the monitors and device adapters
        # report through observable instruments that stop with uninstrument().
        sdk.tracer_provider.force_flush()
        if args.exporter == "console":
            print()
            print(render_summary(sdk.spans.get_finished_spans(), sdk.summary.get_metrics_data()))
        elif args.exporter == "prometheus":
            _serve(url, args.serve)
    finally:
        sdk.shutdown()  # last OTLP export while the monitors are still attached
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    return 0


def _spiking_layers(model) -> int:
    from ..core.model_info import spiking_layer_count

    return spiking_layer_count(model) or 0


def _compile(network, speck: bool, timesteps: int) -> str:
    import sinabs
    import torch

    from .digits import INPUT_SHAPE

    # the Squeeze layers take (batch * timesteps, ...): one sample, all timesteps
    graph = sinabs.to_nir(network.spiking_model, torch.zeros(timesteps, *INPUT_SHAPE))
    text = f"NIR graph with {len(graph.nodes)} nodes"
    if not speck:
        return text + "; DYNAP-CNN config skipped (SynSense's samna is not installed)"
    from sinabs.backend.dynapcnn import DynapcnnNetwork

    chip = DynapcnnNetwork(network.spiking_model, input_shape=INPUT_SHAPE, discretize=True)
    chip.make_config(device="speck2fdevkit:0")
    return text + "; Speck 2f configuration built"


def _map_spinnaker() -> str:
    import importlib.util

    from . import virtual_spinnaker

    if importlib.util.find_spec("spynnaker") is None:
        return "skipped (sPyNNaker is not installed: extra [spinnaker])"
    clash = virtual_spinnaker.existing_user_config()
    if clash:
        return f"skipped ({clash} exists; sPyNNaker reads only one user config)"
    mapped = virtual_spinnaker.map_small_network()
    return (f"{mapped.neurons} neurons on {mapped.cores} application cores of "
            f"{mapped.chips} chips (loading and running need a real board)")


def _serve(url: str, seconds: float | None) -> None:
    print(f"Serving {url} " + (f"for {seconds:g} s" if seconds else "until Ctrl-C"), flush=True)
    try:
        time.sleep(seconds) if seconds else _sleep_forever()
    except KeyboardInterrupt:
        print("stopped")


def _sleep_forever() -> None:
    while True:
        time.sleep(3600)


# --------------------------------------------------------------------------
# Console summary
# --------------------------------------------------------------------------
_SPAN_KEYS = (a.MODEL_TYPE, a.HARDWARE_TARGET, a.CALIBRATION_SAMPLES,
              a.LAYER_NAME, a.SPIKING_LAYERS, "error.type")


FOLD_MS = 0.1  # leaf spans shorter than this are counted, not listed


def render_summary(spans, metrics_data, max_points: int = 8) -> str:
    """Span tree and metric values, from the OTel data itself."""
    lines = ["Traces (spans as OpenTelemetry recorded them):"]
    children: dict[Any, list] = {}
    for span in spans:
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def walk(parent_id, depth):
        folded = 0
        for span in sorted(children.get(parent_id, []), key=lambda s: s.start_time):
            ms = (span.end_time - span.start_time) / 1e6
            if ms < FOLD_MS and span.context.span_id not in children \
                    and span.status.status_code.name != "ERROR":
                folded += 1  # a toolchain's many skipped steps would bury the rest
                continue
            extra = ", ".join(f"{k.rsplit('.', 1)[-1]}={span.attributes[k]}"
                              for k in _SPAN_KEYS if k in span.attributes)
            status = " ERROR" if span.status.status_code.name == "ERROR" else ""
            lines.append(f"  {'  ' * depth}{span.name}  {ms:.1f} ms{status}"
                         + (f"  [{extra}]" if extra else ""))
            walk(span.context.span_id, depth + 1)
        if folded:
            lines.append(f"  {'  ' * depth}... {folded} more under {FOLD_MS} ms")

    walk(None, 0)
    lines.append("")
    lines.append("Metrics (name, unit, attributes -> value):")
    for rm in metrics_data.resource_metrics if metrics_data else ():
        for sm in rm.scope_metrics:
            if sm.scope.name != a.SCOPE:
                continue
            for metric in sm.metrics:
                points = list(metric.data.data_points)
                lines.append(f"  {metric.name} [{metric.unit}]")
                for point in points[:max_points]:
                    attrs = ", ".join(f"{k}={v}" for k, v in point.attributes.items())
                    if hasattr(point, "bucket_counts"):
                        value = f"count={point.count} sum={point.sum:.4g}"
                    else:
                        value = f"{point.value:.6g}"
                    lines.append(f"      {{{attrs}}} -> {value}")
                if len(points) > max_points:
                    lines.append(f"      ... {len(points) - max_points} more")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
