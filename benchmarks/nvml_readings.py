"""Print real NVML readings as JSON: the adapter's snapshots and the OTel points they become.

Run on a machine with an NVIDIA GPU:  python benchmarks/nvml_readings.py [seconds]
Reads every GPU twice, ``seconds`` apart (default 2), and prints each snapshot,
the average power implied by the energy counter over that span (to compare
with the instantaneous ``power_w``), and the hw.* data points one collection
through the SDK's in-memory reader yields. Exit 1 when no GPU is found.
"""

from __future__ import annotations

import json
import sys
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from opentelemetry_instrumentation_spikeformer.devices.base import Unavailable
from opentelemetry_instrumentation_spikeformer.devices.instruments import register
from opentelemetry_instrumentation_spikeformer.devices.nvml import NvmlAdapter
from opentelemetry_instrumentation_spikeformer.devices.poller import Poller
from opentelemetry_instrumentation_spikeformer.devices.registry import Enabled


def main(seconds: float = 2.0) -> int:
    adapter = NvmlAdapter()
    try:
        devices = adapter.discover()
    except Unavailable as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    first = {d.id: adapter.read(d) for d in devices}
    time.sleep(seconds)
    second = {d.id: adapter.read(d) for d in devices}
    report = {"seconds": seconds, "gpus": []}
    for device in devices:
        a, b = first[device.id], second[device.id]
        entry = {"first": a.to_dict(), "second": b.to_dict()}
        if a.energy_j is not None and b.energy_j is not None:
            entry["average_power_from_energy_w"] = (b.energy_j - a.energy_j) / seconds
        report["gpus"].append(entry)
    adapter.close()

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    poller = Poller([Enabled(NvmlAdapter(), True)], interval=60.0, timeout=5.0)
    register(provider.get_meter("nvml_readings"), poller.views, lambda: True)
    poller.run_once()
    began = time.perf_counter()
    data = reader.get_metrics_data()
    report["collection_ms"] = (time.perf_counter() - began) * 1000
    report["points"] = [
        {"metric": m.name, "unit": m.unit, "attributes": dict(p.attributes), "value": p.value}
        for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        for p in m.data.data_points]
    poller.stop()
    provider.shutdown()
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0))
