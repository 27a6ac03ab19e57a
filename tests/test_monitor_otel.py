"""The monitor through OpenTelemetry: observable instruments read through an
InMemoryMetricReader, auto-attach on real conversions, uninstrument."""

from __future__ import annotations

import warnings

import pytest

import torch
import sinabs
nn = torch.nn

from opentelemetry_instrumentation_spikeformer.monitor import metrics as monitor_metrics  # noqa: E402
from opentelemetry_instrumentation_spikeformer.monitor import monitor_model  # noqa: E402
from opentelemetry_instrumentation_spikeformer.monitor.spike_monitor import monitors_of  # noqa: E402

B, T = 2, 4


def ann():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.ReLU())


def spike_input(seed=1):
    torch.manual_seed(seed)
    return torch.rand(B * T, 1, 8, 8) * 3


def monitor_points(otel):
    """Every monitor metric of one fresh collection, by name."""
    names = {spec.name for spec in monitor_metrics.MONITOR_METRICS}
    data = otel.reader.get_metrics_data()
    found: dict[str, list] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name in names:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def value_of(points, name):
    (point,) = points[name]
    return point.value


def test_instruments_report_what_read_returns(otel):
    snn = sinabs.from_model(ann(), input_shape=(1, 8, 8), batch_size=B,
                            num_timesteps=T).spiking_model
    monitor = monitor_model(snn, "tiny", meter_provider=otel.meter_provider,
                            hardware="cmos45nm", timestep_ms=0.5)
    with torch.no_grad():
        snn(spike_input())
        snn(spike_input(2))
    points = monitor_points(otel)
    snap = monitor.read()  # nothing ran since: same totals as the collection saw
    layer = {row["layer"]: row for row in snap["layers"]}["1"]
    attrs = {"model_name": "tiny", "layer_name": "1", "neuron_type": "IAFSqueeze"}

    def value(name, **match):
        hits = [p for p in points[name] if all(p.attributes.get(k) == v for k, v in match.items())]
        assert len(hits) == 1, (name, hits)
        return hits[0]

    assert value("neural.spikes", **attrs).value == layer["spikes"] > 0
    # AvgPool -> Linear: the layer's events reach the head through a sum pooling
    assert value("neural.synops", **attrs, synop_input="spike_sums").value == \
        layer["synops_by_input"]["spike_sums"] == layer["synops"] > 0
    assert not [p for p in points["neural.synops"] if p.attributes["layer_name"] == "1"
                and p.attributes["synop_input"] != "spike_sums"]  # categories it never saw
    assert "neural.spike_magnitude" not in points  # binary and count layers: none
    assert value("neural.firing_rate", **attrs).value == pytest.approx(layer["firing_rate"])
    assert value("spike.rate", **attrs).value == pytest.approx(layer["firing_rate"] / 0.5e-3)
    hist = value("membrane_potential", **attrs)
    assert 0 < hist.count <= len(layer["membrane_sample"])
    energy_attrs = {"model_name": "tiny", "hardware_target": "cmos45nm"}
    assert value("spike_compiler.energy_estimate", **energy_attrs).value == \
        pytest.approx(snap["energy"]["snn_mj"])
    assert value("energy_efficiency_ratio", **energy_attrs).value == \
        pytest.approx(snap["energy"]["ratio"])
    assert value("spike_compiler.energy_estimate_memory_aware", model_name="tiny").value == \
        pytest.approx(snap["energy_memory"]["snn_mj"])
    # counters stay monotonic across reset(); gauges cover the interval only
    monitor.reset()
    with torch.no_grad():
        snn(spike_input(3))
    after = monitor.read()
    again = monitor_points(otel)
    spikes = [p for p in again["neural.spikes"] if p.attributes["layer_name"] == "1"][0]
    first = {r["layer"]: r for r in after["layers"]}["1"]
    assert spikes.value == layer["spikes"] + first["spikes"]
    rate = [p for p in again["neural.firing_rate"] if p.attributes["layer_name"] == "1"][0]
    assert rate.value == pytest.approx(first["firing_rate"])
    # no forward since the last collection: counters stay, interval gauges vanish,
    # the energy estimate of the latest inference stays (alerts need the series)
    idle = monitor_points(otel)
    assert idle["neural.spikes"] and "neural.firing_rate" not in idle
    latest = after["energy"]
    assert value_of(idle, "spike_compiler.energy_estimate") == pytest.approx(latest["snn_mj"])
    assert value_of(idle, "energy_efficiency_ratio") == pytest.approx(latest["ratio"])
    monitor.detach()
    gone = monitor_points(otel)
    assert "neural.spikes" not in gone and "spike_compiler.energy_estimate" not in gone


def test_energy_attributes_are_bounded(otel):
    snn = sinabs.from_model(ann(), input_shape=(1, 8, 8), batch_size=B,
                            num_timesteps=T).spiking_model
    with monitor_model(snn, "tiny", meter_provider=otel.meter_provider) as monitor:
        with torch.no_grad():
            snn(spike_input())
        points = monitor_points(otel)
    for name, spec_attrs in ((s.name, set(s.attributes)) for s in monitor_metrics.MONITOR_METRICS):
        for point in points.get(name, ()):
            assert set(point.attributes) == spec_attrs, name
    assert monitor.read()["hardware"] == "cmos45nm"  # the energy_hardware default


def test_chip_tables_report_no_efficiency_ratio(otel):
    snn = sinabs.from_model(ann(), input_shape=(1, 8, 8), batch_size=B,
                            num_timesteps=T).spiking_model
    with monitor_model(snn, "tiny", meter_provider=otel.meter_provider, hardware="loihi"):
        with torch.no_grad():
            snn(spike_input())
        points = monitor_points(otel)
    assert points["spike_compiler.energy_estimate"][0].value > 0
    assert "energy_efficiency_ratio" not in points  # no 45 nm MAC against a chip's synop


def test_auto_attach_on_sinabs_conversion_and_uninstrument(instrument, otel):
    instrumentor = instrument()
    net = sinabs.from_model(ann(), input_shape=(1, 8, 8), batch_size=B, num_timesteps=T)
    snn = net.spiking_model
    [monitor] = monitors_of(snn)
    assert monitor.name == "Sequential"  # the source ANN's class: bounded
    with torch.no_grad():
        snn(spike_input())
    layer = {r["layer"]: r for r in monitor.read()["layers"]}["1"]
    assert otel.value("neural.spikes", model_name="Sequential", layer_name="1") == layer["spikes"] > 0
    recorded = sum(p.count for p in monitor_points(otel)["membrane_potential"])
    assert recorded > 0
    spikes = otel.value("neural.spikes", model_name="Sequential")
    instrumentor.uninstrument()
    assert not monitor.attached and not monitors_of(snn)
    with torch.no_grad():
        snn(spike_input(2))  # no longer counted
    points = monitor_points(otel)
    # what was counted stays reported (a shutdown after uninstrument exports it);
    # the interval gauges have no new forward to describe
    assert otel.value("neural.spikes", model_name="Sequential") == spikes
    assert points["spike_compiler.energy_estimate"]
    assert "neural.firing_rate" not in points and "spike.rate" not in points
    assert sum(p.count for p in points["membrane_potential"]) == recorded
    monitor.detach()  # detached: no longer reported
    for spec in monitor_metrics.MONITOR_METRICS:
        if spec.kind != "histogram":  # a cumulative histogram keeps its old buckets
            assert otel.points(spec.name) == [], spec.name


def test_auto_attach_on_spikingjelly_conversion(instrument, otel):
    import spikingjelly  # noqa: F401
    from spikingjelly.activation_based import ann2snn, functional

    instrument(monitor_sample_every=1, timestep_ms=2.0,
               energy_table='{"cmos45nm": {"synop_pj": 1.5}}', energy_hardware="cmos45nm")
    source = ann()
    loader = [(torch.rand(4, 1, 8, 8), torch.zeros(4))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snn = ann2snn.Converter(ann2snn.RateCodingRecipe(loader, mode="max")).convert(source)
    [monitor] = monitors_of(snn)
    assert monitor.name == "Sequential" and monitor.timestep_ms == 2.0
    assert monitor.hardware == "cmos45nm" and monitor.table.synop_pj == 1.5  # keywords win
    with torch.no_grad():
        for _ in range(T):
            snn(torch.rand(B, 1, 8, 8))
        functional.reset_net(snn)
    snap = monitor.read()
    assert snap["inferences"] == B and snap["layers"][0]["timesteps"] == T
    assert otel.value("neural.spikes", layer_name="spiking_0.if_node") == \
        snap["layers"][0]["spikes"]


def test_spike_monitor_setting_off_attaches_nothing(instrument):
    instrument(spike_monitor=False)
    net = sinabs.from_model(ann(), input_shape=(1, 8, 8), batch_size=B, num_timesteps=T)
    assert monitors_of(net.spiking_model) == []


def test_monitor_package_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; import opentelemetry_instrumentation_spikeformer.monitor.auto_attach, "
            "opentelemetry_instrumentation_spikeformer.monitor.instruments; "
            "bad = [m for m in ('torch', 'sinabs', 'spikingjelly', 'snntorch') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
