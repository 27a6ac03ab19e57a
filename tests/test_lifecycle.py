"""Lifecycle (issue 11, item 8): instrument/uninstrument cycles leave nothing
behind, uninstrumenting before the provider's shutdown keeps the monitor's final
values, and a fork during a collection cannot deadlock the child."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import pytest

from models import INPUT_SHAPE, tiny_cnn

import torch
import sinabs


def test_675_instrument_cycles_leave_no_hook_or_session(otel):
    import wrapt.importer

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
    from opentelemetry_instrumentation_spikeformer.core.patching import PatchSession
    from opentelemetry_instrumentation_spikeformer.devices.instrumentor import (
        SpikeformerDevicesInstrumentor,
    )

    def hooks() -> int:
        return sum(len(v or ()) for v in wrapt.importer._post_import_hooks.values())

    gc.collect()
    # sessions other tests still hold (a test's own instrumentor, a kept traceback)
    # are not this test's: only the 675 cycles must leave none
    earlier = [o for o in gc.get_objects() if isinstance(o, PatchSession)]
    instrumentors = (SpikeformerInstrumentor(), SpikeformerDevicesInstrumentor())
    sizes = []
    for cycle in range(675):
        for inst in instrumentors:
            inst.instrument(tracer_provider=otel.tracer_provider,
                            meter_provider=otel.meter_provider, device_adapters="none")
        for inst in instrumentors:
            inst.uninstrument()
        if cycle in (0, 674):
            sizes.append(hooks())
    assert sizes[0] == sizes[1]
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, PatchSession)
            and not any(o is e for e in earlier)] == []


def test_uninstrument_before_shutdown_keeps_the_monitors_final_metrics():
    """The usual end of a script: uninstrument(), then meter_provider.shutdown(),
    whose last export must still carry what the monitor counted."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )

    from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
    from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import monitors_of

    class Exporter(MetricExporter):
        def __init__(self):
            super().__init__()
            self.exported = []

        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            self.exported.append(metrics_data)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            pass

    exporter = Exporter()
    provider = MeterProvider(metric_readers=[
        PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)])
    inst = SpikeformerInstrumentor()
    inst.instrument(meter_provider=provider)
    try:
        snn = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1).spiking_model
        [monitor] = monitors_of(snn)
        with torch.no_grad():
            snn(torch.rand(4, *INPUT_SHAPE) * 4)
        counted = monitor.read()
    finally:
        inst.uninstrument()
    provider.shutdown()  # the one export
    points: dict[str, list] = {}
    for data in exporter.exported:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
    assert sum(p.value for p in points["neural.spikes"]) == counted["totals"]["spikes"] > 0
    assert sum(p.value for p in points["neural.synops"]) == pytest.approx(
        counted["totals"]["synops"])
    [energy] = points["spike_compiler.energy_estimate"]
    assert energy.value == pytest.approx(counted["energy"]["snn_mj"])


CHILD_TIMEOUT_S = 10


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_during_collection_never_deadlocks_the_child(instrument, otel):
    """One thread collects without pause (the monitor lock is held for most of
    each collection); the main thread forks 25 times. Each child takes every
    lock of ours a collection, an import hook, a naming or a device view takes,
    and exits: none may hang. (The SDK's own locks are the SDK's: a child that
    runs a full SDK collection can still hang in them.)"""
    from opentelemetry_instrumentation_spikeformer.core import imports, metrics
    from opentelemetry_instrumentation_spikeformer.devices.poller import Poller
    from opentelemetry_instrumentation_spikeformer.devices.registry import enabled_adapters
    from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
    from opentelemetry_instrumentation_spikeformer.monitor.instruments import instruments_for

    instrument()
    models = [sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1).spiking_model
              for _ in range(6)]
    with torch.no_grad():
        for model in models:
            model(torch.rand(2, *INPUT_SHAPE) * 4)
    poller = Poller(enabled_adapters(load_settings({"device_adapters": "host"})), 0.05, 1.0)
    poller.start()
    monitors = instruments_for(otel.meter_provider)
    # Fan-out maps are built by the first read (a convolution's backward): done
    # here, as torch itself cannot fork while another thread runs an OpenMP op.
    monitors._current("spikes")
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            monitors._current("spikes")  # our part of a collection, under our lock
            monitors._current("spikes")  # (a second call starts a new cycle)
            poller.views()

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    hung = []
    try:
        for _ in range(25):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0:  # child: touch every lock, then leave without cleanup
                code = 1
                try:
                    signal.alarm(CHILD_TIMEOUT_S + 5)
                    monitors._current("spikes")
                    monitors._current("spikes")
                    monitors.names.assign(models[0], "child", 50)
                    metrics.once_per("fork-test", object(), dict)
                    imports.listen("no_such_module_after_fork", print)
                    imports.unlisten(print)
                    poller.views()
                    code = 0
                finally:
                    os._exit(code)
            deadline = time.monotonic() + CHILD_TIMEOUT_S
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    hung.append(pid)
                    break
                time.sleep(0.01)
    finally:
        stop.set()
        collector.join(10)
        poller.stop()
    assert hung == []
