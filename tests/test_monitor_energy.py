"""Energy model: the estimate's arithmetic on a real model, tables overridden
through the environment, and bad input (one warning, defaults)."""

from __future__ import annotations

import json
import logging

import pytest

torch = pytest.importorskip("torch")
sinabs = pytest.importorskip("sinabs")
nn = torch.nn

from opentelemetry_instrumentation_spikeformer.monitor import energy, monitor_model  # noqa: E402

ENV = "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE"
B, T = 2, 4


@pytest.fixture
def snn():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.ReLU())
    return sinabs.from_model(ann, input_shape=(1, 8, 8), batch_size=B,
                             num_timesteps=T).spiking_model


def run(model, **kwargs):
    monitor = monitor_model(model, "tiny", **kwargs)
    for layer in model.modules():
        if isinstance(layer, sinabs.layers.StatefulLayer):
            layer.reset_states()  # every run starts from rest: same spikes
    torch.manual_seed(1)
    with torch.no_grad():
        model(torch.rand(B * T, 1, 8, 8) * 3)
    snap = monitor.read()
    monitor.detach()
    return snap


def test_estimate_arithmetic(snn):
    snap = run(snn, hardware="loihi")
    est = snap["energy"]
    conv_macs = 4 * 8 * 8 * (1 * 3 * 3)  # output elements x MACs per output
    linear_macs = 64 * 5
    assert est["ann_macs"] == conv_macs + linear_macs
    assert est["encoding_macs_per_inference"] == conv_macs * T  # dense input every step
    synops = snap["totals"]["synops"]
    snn_pj = synops * 23.6 + conv_macs * T * B * 4.6
    assert est["snn_mj"] == pytest.approx(snn_pj * 1e-9 / B)
    assert est["ann_mj"] == pytest.approx((conv_macs + linear_macs) * 4.6e-9)
    assert est["ratio"] == pytest.approx(est["ann_mj"] / est["snn_mj"])
    assert snap["sparsity"] == pytest.approx(1 - snap["totals"]["spikes"] / snap["totals"]["neuron_steps"])


def test_builtin_tables_cite_a_source():
    for table in energy.BUILTIN_TABLES.values():
        assert table.source and table.synop_pj > 0 and table.mac_pj > 0
    assert energy.BUILTIN_TABLES["cmos45nm"].synop_pj == 0.9
    assert energy.BUILTIN_TABLES["cmos45nm"].mac_pj == 4.6
    assert energy.BUILTIN_TABLES["loihi"].synop_pj == 23.6


def test_table_override_from_env_json(snn, monkeypatch):
    base = run(snn)
    monkeypatch.setenv(ENV, json.dumps({"loihi2": {"synop_pj": 11.8}}))
    snap = run(snn)
    assert snap["energy"]["table"]["synop_pj"] == 11.8
    assert snap["energy"]["table"]["mac_pj"] == 4.6  # untouched fields stay
    saved = snap["totals"]["synops"] * (23.6 - 11.8) * 1e-9 / B
    assert base["energy"]["snn_mj"] - snap["energy"]["snn_mj"] == pytest.approx(saved)


def test_table_override_from_file_adds_a_target(snn, monkeypatch, tmp_path):
    path = tmp_path / "energy.json"
    path.write_text(json.dumps({"MyChip": {"synop_pj": 2.0, "mac_pj": 1.0, "neuron_pj": 0.5}}))
    monkeypatch.setenv(ENV, str(path))
    snap = run(snn, hardware="mychip")
    est = snap["energy"]
    assert snap["hardware"] == est["hardware"] == "mychip"
    expected = (snap["totals"]["synops"] * 2.0 + est["encoding_macs_per_inference"] * B * 1.0
                + snap["totals"]["neuron_steps"] * 0.5) * 1e-9 / B
    assert est["snn_mj"] == pytest.approx(expected)


@pytest.mark.parametrize("raw", [
    "{not json",
    json.dumps({"loihi2": {"synop_pj": -1}}),
    json.dumps({"loihi2": {"synop_joules": 1}}),
    json.dumps({"newchip": {"mac_pj": 1}}),
    json.dumps([1, 2]),
    "/nonexistent/energy-table.json",
])
def test_bad_table_warns_once_and_uses_defaults(snn, monkeypatch, caplog, raw):
    monkeypatch.setenv(ENV, raw + " ")  # a fresh value: the parse cache is per value
    with caplog.at_level(logging.WARNING, logger=energy.__name__):
        first = run(snn)
        run(snn)
    warnings = [r for r in caplog.records if ENV in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "\n" not in warnings[0].getMessage()
    assert first["energy"]["table"]["synop_pj"] == energy.BUILTIN_TABLES["loihi2"].synop_pj


def test_unknown_hardware_falls_back_with_one_warning(snn, caplog):
    with caplog.at_level(logging.WARNING, logger=energy.__name__):
        snap = run(snn, hardware="speck2fdevkit:0")
        run(snn, hardware="speck2fdevkit")
    assert snap["hardware"] == "loihi2"
    assert len([r for r in caplog.records if "speck2fdevkit" in r.getMessage()]) == 1


def test_bad_keyword_falls_back_to_default(snn, caplog):
    with caplog.at_level(logging.WARNING):
        snap = run(snn, sample_every=0)
    assert snap["sample_every"] == 1
    assert any("monitor_sample_every" in r.getMessage() for r in caplog.records)
