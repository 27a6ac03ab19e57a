"""MetricSpec is the one place instruments are made: every spec creates its
instrument on a real SDK meter, names that OpenTelemetry's semantic
conventions define have the kind semconv gives them, and no module calls a
Meter's ``create_*`` itself."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from opentelemetry_instrumentation_spikeformer.core.metrics import KINDS, MetricSpec, all_metrics

SRC = Path(__file__).parent.parent / "src" / "opentelemetry_instrumentation_spikeformer"
# semconv's "Instrument:" line -> our kind (we observe, so the observable variant counts)
_SEMCONV_KINDS = {
    "counter": {"counter", "observable_counter"},
    "updowncounter": {"up_down_counter", "observable_up_down_counter"},
    "gauge": {"gauge", "observable_gauge"},
    "histogram": {"histogram"},
}


def test_names_are_unique_and_kinds_known():
    names = [spec.name for spec in all_metrics()]
    assert len(names) == len(set(names))
    assert {spec.kind for spec in all_metrics()} <= set(KINDS)
    with pytest.raises(ValueError):
        MetricSpec("x", "meter", "1", "x", (), "bad kind")


def test_every_spec_creates_its_instrument_on_the_sdk():
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("specs")
    for spec in all_metrics():
        instrument = spec.create(meter, [lambda _options: []] if spec.observable else ())
        expected = "".join(part.title() for part in spec.kind.split("_"))
        assert type(instrument).__name__ in (expected, f"_{expected}"), spec.name
        assert instrument.unit == spec.unit and instrument.description == spec.description


def _semconv_kind(name: str) -> str | None:
    """The instrument kind semconv documents for ``name``, if semconv defines it."""
    prefix = name.split(".", 1)[0]
    try:
        module = importlib.import_module(
            f"opentelemetry.semconv._incubating.metrics.{prefix}_metrics")
    except ImportError:
        return None
    source = Path(module.__file__).read_text()
    found = re.search(rf'Final = "{re.escape(name)}"\n"""\n.*?\nInstrument: (\w+)', source, re.S)
    return found.group(1) if found else None


def test_semconv_names_have_semconvs_kind():
    checked = 0
    for spec in all_metrics():
        kind = _semconv_kind(spec.name)
        if kind is not None:
            checked += 1
            assert spec.kind in _SEMCONV_KINDS[kind], (spec.name, kind, spec.kind)
    assert checked >= 8  # the hw.* names (process/system are system-metrics')


def test_no_module_creates_instruments_but_metric_spec():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "core" / "metrics.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("create_") and \
                    node.attr[len("create_"):] in KINDS:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_histograms_carry_their_buckets():
    for spec in all_metrics():
        if spec.kind == "histogram":
            assert spec.buckets and list(spec.buckets) == sorted(spec.buckets), spec.name
