"""Snapshot gauges: each publisher's latest snapshot replaces its previous one
(no stale per-chip series), one instrument per meter across sessions, silent
once the session is closed."""

from __future__ import annotations

import pytest

from opentelemetry_instrumentation_spikeformer.core.metrics import MetricSpec
from opentelemetry_instrumentation_spikeformer.core.scope import get_meter, get_tracer
from opentelemetry_instrumentation_spikeformer.core.settings import load_settings
from opentelemetry_instrumentation_spikeformer.core.telemetry import Telemetry

UTIL = MetricSpec("test.snapshot.utilization", "observable_gauge", "1",
                  "test_snapshot_utilization", ("target", "chip"), "per chip")
SIZE = MetricSpec("test.snapshot.size", "observable_gauge", "By", "test_snapshot_size_bytes",
                  ("target",), "size")


def _telemetry(otel):
    return Telemetry(get_tracer(otel.tracer_provider), get_meter(otel.meter_provider),
                     load_settings())


def _points(otel, metric):
    return {tuple(sorted(p.attributes.items())): p.value for p in otel.points(metric)}


def _chips(n, value, target="loihi"):
    return [(value, {"target": target, "chip": str(i)}) for i in range(n)]


def test_a_new_snapshot_replaces_the_old_one_whole(otel):
    tel = _telemetry(otel)
    tel.publish("loihi", {UTIL: _chips(3, 0.5), SIZE: [(100, {"target": "loihi"})]})
    assert len(_points(otel, UTIL.name)) == 3 and _points(otel, SIZE.name)
    tel.publish("loihi", {UTIL: _chips(1, 0.25)})
    assert _points(otel, UTIL.name) == {(("chip", "0"), ("target", "loihi")): 0.25}
    assert _points(otel, SIZE.name) == {}  # not in the latest snapshot: gone


def test_groups_are_independent(otel):
    tel = _telemetry(otel)
    tel.publish("loihi", {UTIL: _chips(2, 0.5)})
    tel.publish("akida", {UTIL: _chips(1, 0.75, "akida")})
    tel.publish("loihi", {UTIL: _chips(1, 0.125)})
    assert sorted(_points(otel, UTIL.name).values()) == [0.125, 0.75]


def test_a_closed_session_reports_nothing_and_a_new_one_takes_over_the_meter(otel):
    first = _telemetry(otel)
    first.publish("loihi", {UTIL: _chips(2, 0.5)})
    first.close()
    assert _points(otel, UTIL.name) == {}
    # Same provider, so the same meter, whose SDK keeps the first instrument's
    # callback: the new session's values must come through that one.
    second = _telemetry(otel)
    second.publish("akida", {UTIL: _chips(1, 1.0, "akida")})
    assert list(_points(otel, UTIL.name).values()) == [1.0]


def test_only_observable_gauges_hold_snapshots(otel):
    counter = MetricSpec("test.snapshot.counter", "counter", "1", "x_total", (), "no")
    with pytest.raises(ValueError):
        _telemetry(otel).publish("x", {counter: [(1, {})]})
