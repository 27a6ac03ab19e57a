"""Series and bytes one torchrun rank exports, by model depth (docs/scaling.md).

    .venv/bin/python benchmarks/series_per_rank.py [--layers 4 16 64 256 300] [--ranks 1000]

One fresh interpreter per row (the instrumentor is a singleton): the plugin with
its defaults, the resource of rank 3 of 1,000 with the spikeformer_distributed
detector, a model of N x (Linear(8, 8) -> ReLU) converted by sinabs.from_model
(N spiking layers), 3 forwards before each collection, until every layer has
its membrane histogram (the monitor records at most 128 layers per collection
and rotates). Then, for the last collection:

  points        OTLP data points
  series        lines of the real Prometheus exposition (the SDK's
                PrometheusMetricReader, target_info included)
  OTLP bytes    ExportMetricsServiceRequest size: what each periodic export
                sends (cumulative temporality: every export is this size)
  gzip          the same compressed (the Python exporter sends it uncompressed
                unless OTEL_EXPORTER_OTLP_COMPRESSION=gzip)
  span bytes    the conversion's spans, encoded

The row "not monitored" is a rank outside OTEL_PYTHON_SPIKEFORMER_MONITOR_RANKS
(256 layers). No device adapter: the host adds 7 series on LOCAL_RANK 0 only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

RANK_ENV = {
    "RANK": "3", "WORLD_SIZE": "1000", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "8",
    "GROUP_RANK": "0", "MASTER_ADDR": "node0", "MASTER_PORT": "29500",
    "TORCHELASTIC_RUN_ID": "0f6f2a9e-5a3b-4a8e-9d0e-6e9a1c2b3d4f",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "spikeformer_distributed",
    "OTEL_SERVICE_NAME": "snn-job", "OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS": "none",
    "PIP_NO_INDEX": "1",
}
INTERVAL_S = 60  # the SDK's default OTEL_METRIC_EXPORT_INTERVAL
SCRAPE_S = 15


def exposition_lines(registry) -> set[str]:
    from prometheus_client import generate_latest

    return {line.rsplit(" ", 1)[0] for line in generate_latest(registry).decode().splitlines()
            if line and not line.startswith("#")}


def one(layers: int, monitored: bool) -> dict:
    import gzip

    import sinabs
    import torch
    import torch.nn as nn
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import REGISTRY

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

    resource = Resource.create()
    baseline = exposition_lines(REGISTRY)  # the client's own process_/python_ series
    reader, prometheus = InMemoryMetricReader(), PrometheusMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader, prometheus])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    SpikeformerInstrumentor().instrument(tracer_provider=tracer_provider,
                                         meter_provider=meter_provider,
                                         monitor_ranks="all" if monitored else "0")
    body = []
    for _ in range(layers):
        body += [nn.Linear(8, 8), nn.ReLU()]
    net = sinabs.from_model(nn.Sequential(*body), input_shape=(8,), batch_size=1)
    def forwards() -> None:
        with torch.no_grad():
            for _ in range(3):
                net.reset_states()
                net(torch.rand(1, 8) * 3)

    for _ in range(-(-layers // 128) + 1):
        forwards()
        data = reader.get_metrics_data()  # one collection per round, as one exporter does
    # The Prometheus reader saw every membrane record; forwards before its scrape,
    # as in a running job, so that the interval gauges (rates) have a value.
    forwards()
    series = exposition_lines(REGISTRY) - baseline
    points = sum(len(m.data.data_points) for rm in data.resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics)
    raw = encode_metrics(data).SerializeToString()
    return {"layers": layers, "monitored": monitored, "points": points, "series": len(series),
            "otlp_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw)),
            "spans": len(spans.get_finished_spans()),
            "span_bytes": len(encode_spans(spans.get_finished_spans()).SerializeToString()),
            "resource_attributes": len(resource.attributes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, nargs="*", default=[4, 16, 64, 256, 300])
    parser.add_argument("--ranks", type=int, default=1000)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1] == "monitored")))
        return 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(RANK_ENV)
    rows = []
    for layers, monitored in [(n, True) for n in args.layers] + [(256, False)]:
        out = subprocess.run([sys.executable, __file__, "--one", str(layers),
                              "monitored" if monitored else "not"],
                             env=env, capture_output=True, text=True, timeout=900)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| Spiking layers | OTLP points | Prometheus series | OTLP bytes per export | gzip "
          "| Conversion spans (bytes) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        label = r["layers"] if r["monitored"] else f"{r['layers']}, rank not monitored"
        print(f"| {label} | {r['points']:,} | {r['series']:,} | {r['otlp_bytes']:,} "
              f"| {r['gzip_bytes']:,} | {r['spans']} ({r['span_bytes']:,}) |")
    full = {r["layers"]: r for r in rows if r["monitored"]}
    idle = next(r for r in rows if not r["monitored"])
    if len(full) >= 2:
        small, big = min(full), max(n for n in full if n <= 256)
        per_layer = (full[big]["series"] - full[small]["series"]) / (big - small)
        per_layer_bytes = (full[big]["otlp_bytes"] - full[small]["otlp_bytes"]) / (big - small)
        print(f"\nper spiking layer: {per_layer:.1f} series, {per_layer_bytes:.0f} OTLP bytes; "
              f"a rank without monitor: {idle['series']} series, {idle['otlp_bytes']:,} bytes; "
              f"{idle['resource_attributes']} resource attributes")
    if 256 in full:
        n, r = args.ranks, full[256]
        every = n * r["series"]
        one_rank = r["series"] + (n - 1) * idle["series"]
        print(f"{n:,} ranks x 256 layers, every rank monitored: {every:,} series, "
              f"{every / SCRAPE_S:,.0f} samples/s at {SCRAPE_S} s scrapes, OTLP "
              f"{n * r['otlp_bytes'] / INTERVAL_S / 1e6:.1f} MB/s at {INTERVAL_S} s exports "
              f"({n * r['gzip_bytes'] / INTERVAL_S / 1e6:.2f} MB/s gzip)")
        print(f"{n:,} ranks x 256 layers, MONITOR_RANKS=0: {one_rank:,} series, OTLP "
              f"{(r['otlp_bytes'] + (n - 1) * idle['otlp_bytes']) / INTERVAL_S / 1e6:.2f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
