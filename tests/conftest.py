"""Shared fixtures: SDK providers on in-memory exporters and a fresh instrumentor."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hypothesis
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
from opentelemetry_instrumentation_spikeformer.devices.instrumentor import (
    SpikeformerDevicesInstrumentor,
)

# The PyPI samna is a stub that runs pip on import: make that pip fail at once.
os.environ.setdefault("PIP_NO_INDEX", "1")


class Telemetry:
    """Handles on what the code under test emitted."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name: str | None = None):
        spans = self.exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list:
        """Data points of one metric from a fresh collection."""
        data = self.reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def value(self, metric: str, **attrs) -> float:
        """Sum of the points of ``metric`` whose attributes include ``attrs``."""
        total = 0.0
        for p in self.points(metric):
            if all(p.attributes.get(k) == v for k, v in attrs.items()):
                total += p.value if hasattr(p, "value") else p.count
        return total

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture(autouse=True)
def _internal_errors_reported_afresh(monkeypatch):
    """Our own failures are logged once per place per process: each test starts
    with none reported, whatever ran before it."""
    from opentelemetry_instrumentation_spikeformer.core import errors

    monkeypatch.setattr(errors, "_warned", set())


@pytest.fixture(autouse=True)
def _energy_tables_parsed_afresh(monkeypatch):
    """The energy tables' parse cache and the unknown-hardware warnings are per
    process: each test starts with none, whatever ran before it in this
    interpreter (mutmut runs the suite several times in one process). Only
    when the monitor's energy module is loaded: importing it is not a test's
    side effect."""
    energy = sys.modules.get("opentelemetry_instrumentation_spikeformer.monitor.energy")
    if energy is not None:
        monkeypatch.setattr(energy, "_cache", {})
        monkeypatch.setattr(energy, "_warned_hardware", set())


@pytest.fixture
def otel():
    tel = Telemetry()
    yield tel
    tel.shutdown()


def _instrumenting(instrumentor, otel):

    def apply(**kwargs):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=otel.tracer_provider,
                                meter_provider=otel.meter_provider, **kwargs)
        return instrumentor

    yield apply
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def instrument(otel):
    """Instrument with in-memory providers; extra kwargs via the returned callable."""
    yield from _instrumenting(SpikeformerInstrumentor(), otel)


@pytest.fixture
def instrument_devices(otel):
    """The devices instrumentor, like ``instrument``."""
    yield from _instrumenting(SpikeformerDevicesInstrumentor(), otel)


KITS = ("spikeformer", "spike_transformer_compiler")


@pytest.fixture
def kits(tmp_path, monkeypatch):
    """The Spikeformer kits of the observability design (not on PyPI): small
    packages with their API, importable for the duration of a test."""
    shutil.copytree(Path(__file__).parent / "kits", tmp_path / "kits")
    monkeypatch.syspath_prepend(str(tmp_path / "kits"))
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in KITS]:
        del sys.modules[name]


# Hypothesis: shared two-core machines, so no per-example deadline; no example
# database in the work tree (a failure prints its reproduction instead).
hypothesis.settings.register_profile("suite", deadline=None, database=None, print_blob=True)
hypothesis.settings.load_profile("suite")
