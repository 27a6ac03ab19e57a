"""Poller and hw.* instruments: never block a collection, skip what failed, count errors."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from device_helpers import Empty, Flaky, Hang, Steady, enabled, view, wait_for

from opentelemetry_instrumentation_spikeformer.devices import metrics as device_metrics
from opentelemetry_instrumentation_spikeformer.devices.host import HostAdapter
from opentelemetry_instrumentation_spikeformer.devices.instruments import register
from opentelemetry_instrumentation_spikeformer.devices.poller import Poller


@pytest.fixture
def polled(otel):
    """Start a poller over the given adapters with instruments on ``otel``'s meter."""
    started = []

    def start(*adapters, required=(), interval=0.05, timeout=0.2):
        poller = Poller(enabled(*adapters, required=required), interval, timeout)
        state = {"on": True}
        register(otel.meter_provider.get_meter("test"), poller.views, lambda: state["on"])
        poller.start()
        started.append(poller)
        return poller, state

    yield start
    for poller in started:
        poller.stop()


def _collect_timed(otel):
    began = time.perf_counter()
    data = otel.reader.get_metrics_data()
    return time.perf_counter() - began, data


def _points(data, metric):
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            if m.name == metric for p in m.data.data_points]


def test_hanging_adapter_never_blocks_collection(otel, polled):
    hang = Hang()
    poller, _ = polled(HostAdapter(), Steady(), hang, timeout=0.3)
    try:
        assert hang.entered.wait(2.0)
        # While the hung probe is still inside its timeout...
        elapsed, data = _collect_timed(otel)
        assert elapsed < 0.1, f"collection took {elapsed * 1000:.0f} ms during a hung probe"
        # ...and after it has been declared timed out, over several rounds.
        assert wait_for(lambda: view(poller, "hang").status == "down")
        time.sleep(0.2)
        elapsed, data = _collect_timed(otel)
        assert elapsed < 0.1, f"collection took {elapsed * 1000:.0f} ms with a hung adapter"

        power = {p.attributes[device_metrics.HW_ID]: p.value for p in _points(data, "hw.power")}
        assert power == {"steady0": 12.5}  # the hung board reports no power, not 0
        assert _points(data, "system.memory.utilization") == []  # system-metrics' name
        status = {(p.attributes[device_metrics.HW_ID], p.attributes[device_metrics.HW_STATE]): p.value
                  for p in _points(data, "hw.status")}
        assert status[("hang0", "failed")] == 1 and status[("hang0", "ok")] == 0
        assert status[("steady0", "ok")] == 1 and status[("host", "failed")] == 0
        errors = [p for p in _points(data, "hw.errors") if p.attributes[device_metrics.HW_ID] == "hang0"]
        # One timed-out probe: the hung one is not re-triggered while it runs.
        assert [(p.attributes["error.type"], p.value) for p in errors] == [("timeout", 1)]
    finally:
        hang.release.set()
    # When the board answers again, the next reading replaces the failure.
    assert wait_for(lambda: view(poller, "hang").status == "up")


def test_every_spec_is_an_instrument_with_its_unit(otel, polled):
    polled(Steady(), Flaky())
    assert wait_for(lambda: otel.points("hw.errors") and otel.points("hw.power"))
    data = otel.reader.get_metrics_data()
    seen = {m.name: m.unit for rm in data.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics}
    for spec in (device_metrics.HW_POWER, device_metrics.HW_ENERGY, device_metrics.HW_STATUS, device_metrics.HW_ERRORS,
                 device_metrics.HW_UTILIZATION, device_metrics.HW_MEMORY_USAGE, device_metrics.HW_MEMORY_LIMIT,
                 device_metrics.HW_TEMPERATURE):
        assert seen.get(spec.name) == spec.unit, spec.name
    point = _points(data, "hw.power")[0]
    assert dict(point.attributes) == {"hw.id": "steady0", "hw.type": "gpu", "hw.name": "Steady GPU"}
    assert _points(data, "hw.energy")[0].value == 100.0


def test_failed_reads_count_errors_log_once_and_recover(otel, polled, caplog):
    flaky = Flaky()
    caplog.set_level(logging.INFO, logger="spikeformer.events")
    poller, _ = polled(flaky)
    assert wait_for(lambda: flaky.reads >= 4)
    errors = otel.value("hw.errors", **{"hw.id": "flaky0", "error.type": "ConnectionError"})
    assert errors >= 3
    assert otel.points("neuromorphic.core.utilization") == []  # skipped, not 0
    events = [r for r in caplog.records if r.name == "spikeformer.events"]
    assert len(events) == 1  # on the state change only, not every poll
    assert events[0].event_type == "hardware_error"
    assert events[0].hardware_type == "flaky"
    assert "board did not answer" in events[0].error_message

    flaky.failing = False
    assert wait_for(lambda: view(poller, "flaky").status == "up")
    assert otel.value("neuromorphic.core.utilization", **{"hw.id": "flaky0"}) == 0.5
    assert otel.value("neuromorphic.synapse.updates", **{"hw.id": "flaky0"}) == 7
    kinds = [r.event_type for r in caplog.records if r.name == "spikeformer.events"]
    assert kinds == ["hardware_error", "hardware_recovered"]


def test_required_adapter_that_finds_nothing_is_down(otel, polled):
    poller, _ = polled(Empty(), Steady(), required=("empty",))
    assert wait_for(lambda: view(poller, "empty").status == "down")
    assert otel.value("hw.status", **{"hw.id": "empty", "hw.state": "failed"}) == 1
    assert view(poller, "empty").reason == "no device found"


def test_optional_adapter_that_finds_nothing_retires(otel, polled):
    poller, _ = polled(Empty(), Steady())
    assert wait_for(lambda: view(poller, "empty").status == "absent")
    assert not [t for t in threading.enumerate() if t.name == "spikeformer-device-empty"]
    assert all(p.attributes["hw.id"] != "empty" for p in otel.points("hw.status"))


def test_stop_ends_threads_and_silences_callbacks(otel, polled):
    before = set(threading.enumerate())  # another test's poller may still be winding down

    def ours():
        return [t.name for t in set(threading.enumerate()) - before
                if t.name.startswith("spikeformer-device")]

    poller, state = polled(Steady(), HostAdapter())
    assert wait_for(lambda: otel.points("hw.power"))
    assert ours()
    state["on"] = False
    poller.stop()
    assert otel.points("hw.power") == [] and otel.points("hw.status") == []
    assert wait_for(lambda: not ours(), timeout=2.0), ours()


def test_feature_disabled_starts_nothing(otel, instrument):
    before = {t.name for t in threading.enumerate()}
    instrument(device_adapters="none")
    assert otel.points("hw.status") == [] and otel.points("system.memory.utilization") == []
    started = {t.name for t in threading.enumerate()} - before
    assert not [name for name in started if name.startswith("spikeformer-device")]


def test_feature_through_the_instrumentor(otel, instrument_devices):
    instrumentor = instrument_devices(device_adapters="host", device_poll_interval=0.05)
    assert wait_for(lambda: otel.points("hw.status"))
    assert otel.value("hw.status", **{"hw.id": "host", "hw.state": "ok"}) == 1
    [host] = [v for v in instrumentor.poller.views() if v.name == "host"]
    assert 0 < host.snapshots[0].extra["memory_utilization"] < 1  # kept for health
    # host and process metrics are opentelemetry-instrumentation-system-metrics' names
    for name in ("system.memory.utilization", "process.memory.usage", "process.cpu.utilization"):
        assert otel.points(name) == [], name
    instrumentor.uninstrument()
    assert otel.points("hw.status") == []  # callbacks yield nothing


def test_prometheus_names_match_the_semconv_table():
    """Through the SDK's real Prometheus reader: every hardware spec's Prometheus name."""
    from prometheus_client import REGISTRY, generate_latest
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    flaky = Flaky()
    poller = Poller(enabled(Steady(), HostAdapter(), flaky), 1.0, 1.0)
    register(provider.get_meter("test"), poller.views, lambda: True)
    try:
        poller.run_once()  # flaky fails once: hw.errors
        flaky.failing = False
        poller.run_once()  # then reads neuromorphic values
        names = {line.split("{")[0].split(" ")[0]
                 for line in generate_latest(REGISTRY).decode().splitlines()
                 if line and not line.startswith("#")}
    finally:
        poller.stop()
        provider.shutdown()
    missing = [s.prometheus for s in device_metrics.HARDWARE_METRICS if s.prometheus not in names]
    assert missing == []


def test_system_metrics_serves_the_host_series_alerts_and_dashboards_use():
    """Host memory and process series come from opentelemetry-instrumentation-system-metrics,
    through the SDK's Prometheus reader, with the labels the alert expects."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY, generate_latest

    from collector_support import SYSTEM_METRICS_SERIES

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = SystemMetricsInstrumentor()
    instrumentor.instrument(meter_provider=provider)
    try:
        lines = [line for line in generate_latest(REGISTRY).decode().splitlines()
                 if line and not line.startswith("#")]
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    names = {line.split("{")[0].split(" ")[0] for line in lines}
    assert SYSTEM_METRICS_SERIES <= names
    assert any(line.startswith("system_memory_utilization{") and 'state="used"' in line
               for line in lines)
