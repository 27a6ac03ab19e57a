"""The core metrics as a user's backend sees them, written out here (README's
metric table, the dashboards and alerts use these names): OpenTelemetry names
and units from the SDK, Prometheus names from the SDK's Prometheus exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import pipeline_kit
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor

UNITS = {
    "spikeformer.conversions": "{conversion}",
    "spikeformer.conversion.errors": "{error}",
    "spikeformer.conversion.duration": "s",
    "spikeformer.active_conversions": "{conversion}",
    "spike_compiler.compilations": "{compilation}",
    "spike_compiler.compilation.errors": "{error}",
    "spike_compiler.compilation.duration": "s",
    "spike_compiler.compilation.memory_growth": "By",
}
PROMETHEUS = {
    "spikeformer_conversions_total", "spikeformer_conversion_errors_total",
    "spikeformer_conversion_duration_seconds_bucket", "spikeformer_conversion_duration_seconds_sum",
    "spikeformer_conversion_duration_seconds_count", "spikeformer_active_conversions",
    "spike_compiler_compilations_total", "spike_compiler_compilation_errors_total",
    "spike_compiler_compilation_duration_seconds_bucket",
    "spike_compiler_compilation_memory_growth_bytes_bucket",
}


def _one_failing_conversion_and_compilation():
    with pytest.raises(RuntimeError):
        pipeline_kit.compile_model(object())
    with pytest.raises(KeyboardInterrupt):
        pipeline_kit.interrupt(object())


@pytest.fixture
def instrumented():
    """Instrument with the given readers; always uninstrumented after."""
    inst = SpikeformerInstrumentor()
    providers = []

    def start(*readers):
        provider = MeterProvider(metric_readers=list(readers))
        providers.append(provider)
        inst.instrument(tracer_provider=TracerProvider(), meter_provider=provider,
                        extra_targets=pipeline_kit.EXTRA_TARGETS)

    yield start
    inst.uninstrument()
    for provider in providers:
        provider.shutdown()


def test_names_and_units(instrumented):
    reader = InMemoryMetricReader()
    instrumented(reader)
    _one_failing_conversion_and_compilation()
    seen = {m.name: m.unit for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics for m in sm.metrics}
    assert seen == UNITS


def test_prometheus_names(instrumented):
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, generate_latest

    instrumented(PrometheusMetricReader())
    _one_failing_conversion_and_compilation()
    text = generate_latest(REGISTRY).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    assert PROMETHEUS <= names
    assert "# TYPE spikeformer_conversion_duration_seconds histogram" in text
    assert "# TYPE spikeformer_active_conversions gauge" in text
