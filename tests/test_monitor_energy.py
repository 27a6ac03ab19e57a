"""Energy model: the papers' estimate on a real model (45 nm by default, encoding
MACs once per new input), chip tables without an ANN baseline, tables
overridden through the environment, and bad input (one warning, defaults)."""

from __future__ import annotations

import json
import logging

import pytest

import torch
import sinabs
nn = torch.nn

from opentelemetry_instrumentation_spikeformer.monitor import energy, monitor_model  # noqa: E402

ENV = "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE"
B, T = 2, 4
CONV_MACS = 4 * 8 * 8 * (1 * 3 * 3)  # output elements x MACs per output
LINEAR_MACS = 64 * 5


@pytest.fixture
def snn():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.ReLU())
    return sinabs.from_model(ann, input_shape=(1, 8, 8), batch_size=B,
                             num_timesteps=T).spiking_model


def frames(static: bool = False):
    torch.manual_seed(1)
    if static:  # one image per sample, repeated over its T steps (sinabs: batch-major)
        return (torch.rand(B, 1, 1, 8, 8) * 3).expand(B, T, 1, 8, 8).reshape(B * T, 1, 8, 8)
    return torch.rand(B * T, 1, 8, 8) * 3


def run(model, static: bool = False, **kwargs):
    monitor = monitor_model(model, "tiny", **kwargs)
    for layer in model.modules():
        if isinstance(layer, sinabs.layers.StatefulLayer):
            layer.reset_states()  # every run starts from rest: same spikes
    with torch.no_grad():
        model(frames(static))
    snap = monitor.read()
    monitor.detach()
    return snap


def test_papers_method_by_default(snn):
    snap = run(snn)
    est, counts = snap["energy"], snap["counts"]
    assert snap["hardware"] == est["hardware"] == "cmos45nm"
    assert counts["ann_macs"] == est["ann_macs"] == CONV_MACS + LINEAR_MACS
    # a new input every step: the encoding conv runs T times per inference
    assert est["encoding_macs_per_inference"] == CONV_MACS * T
    synops = snap["totals"]["synops_by_input"]
    assert synops["spikes"] == 0 and synops["spike_sums"] > 0  # avg pool -> linear
    pj = 0.9 * (synops["spikes"] + synops["spike_sums"]) + 4.6 * CONV_MACS * T * B
    assert est["snn_mj"] == pytest.approx(pj * 1e-9 / B)
    assert est["ann_mj"] == pytest.approx((CONV_MACS + LINEAR_MACS) * 4.6e-9)
    assert est["ratio"] == pytest.approx(est["ann_mj"] / est["snn_mj"])
    assert est["terms_mj"]["neurons"] == 0.0  # the papers do not price neuron updates
    assert snap["sparsity"] == pytest.approx(
        1 - snap["totals"]["spikes"] / snap["totals"]["neuron_steps"])


def test_a_static_image_is_encoded_once(snn):
    moving, static = run(snn), run(snn, static=True)
    assert static["counts"]["encoding_macs_every_step"] == CONV_MACS * T * B
    assert static["counts"]["encoding_macs"] == CONV_MACS * B  # once per image
    assert moving["counts"]["encoding_macs"] == CONV_MACS * T * B


def test_chip_tables_have_no_ann_baseline(snn):
    snap = run(snn, hardware="loihi")
    est = snap["energy"]
    assert est["hardware"] == "loihi" and est["ann_mj"] is None and est["ratio"] is None
    synops = sum(snap["totals"]["synops_by_input"].values())
    pj = 23.6 * synops + 81.0 * snap["totals"]["neuron_steps"]
    assert est["snn_mj"] == pytest.approx(pj * 1e-9 / B)
    assert est["unpriced_macs_per_inference"] == CONV_MACS * T  # host work: not a chip's


def test_builtin_tables_cite_a_source():
    tables = energy.BUILTIN_TABLES
    for table in tables.values():
        assert table.source and table.synop_pj > 0
        assert table.mac_pj is None or table.mac_pj > 0
    assert (tables["cmos45nm"].synop_pj, tables["cmos45nm"].mac_pj) == (0.9, 4.6)
    assert energy.DEFAULT_TABLE == "cmos45nm"
    assert (tables["loihi"].synop_pj, tables["loihi"].neuron_pj) == (23.6, 81.0)
    # keras-spiking 0.3.0's ModelEnergy.devices, in pJ
    assert (tables["spinnaker"].synop_pj, tables["spinnaker"].neuron_pj) == (13300.0, 26000.0)
    assert (tables["spinnaker2"].synop_pj, tables["spinnaker2"].neuron_pj) == (450.0, 2190.0)
    for name, pj in (("cpu", 8600.0), ("gpu", 300.0), ("arm", 900.0)):
        table = tables[f"{name}_degnan2016"]
        assert table.synop_pj == table.mac_pj == table.neuron_pj == pj
    chips = [t for t in tables.values() if t.mac_pj is None]
    assert {t.name for t in chips} == {"loihi", "truenorth", "spinnaker", "spinnaker2"}


def test_table_override_from_env_json(snn, monkeypatch):
    base = run(snn)
    monkeypatch.setenv(ENV, json.dumps({"cmos45nm": {"synop_pj": 0.45}}))
    snap = run(snn)
    assert snap["energy"]["table"]["synop_pj"] == 0.45
    assert snap["energy"]["table"]["mac_pj"] == 4.6  # untouched fields stay
    saved = sum(snap["totals"]["synops_by_input"].values()) * (0.9 - 0.45) * 1e-9 / B
    assert base["energy"]["snn_mj"] - snap["energy"]["snn_mj"] == pytest.approx(saved)


def test_table_override_from_file_adds_a_target(snn, monkeypatch, tmp_path):
    path = tmp_path / "energy.json"
    path.write_text(json.dumps({"MyChip": {"synop_pj": 2.0, "mac_pj": 1.0, "neuron_pj": 0.5}}))
    monkeypatch.setenv(ENV, str(path))
    snap = run(snn, hardware="mychip")
    est = snap["energy"]
    assert snap["hardware"] == est["hardware"] == "mychip"
    synops = sum(snap["totals"]["synops_by_input"].values())
    expected = (synops * 2.0 + est["encoding_macs_per_inference"] * B * 1.0
                + snap["totals"]["neuron_steps"] * 0.5) * 1e-9 / B
    assert est["snn_mj"] == pytest.approx(expected)
    assert est["ratio"] is not None  # it named a MAC of its own technology


@pytest.mark.parametrize("raw", [
    "{not json",
    json.dumps({"cmos45nm": {"synop_pj": -1}}),
    json.dumps({"cmos45nm": {"synop_joules": 1}}),
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
    assert first["energy"]["table"]["synop_pj"] == energy.BUILTIN_TABLES["cmos45nm"].synop_pj


def test_unknown_hardware_falls_back_with_one_warning(snn, caplog):
    with caplog.at_level(logging.WARNING, logger=energy.__name__):
        snap = run(snn, hardware="speck2fdevkit:0")
        run(snn, hardware="speck2fdevkit")
    assert snap["hardware"] == "cmos45nm"
    assert len([r for r in caplog.records if "speck2fdevkit" in r.getMessage()]) == 1


def test_bad_keyword_falls_back_to_default(snn, caplog):
    with caplog.at_level(logging.WARNING):
        snap = run(snn, sample_every=0)
    assert snap["sample_every"] == 1
    assert any("monitor_sample_every" in r.getMessage() for r in caplog.records)


def test_lemaire_cost_per_byte_follows_its_breakpoints():
    """Lemaire et al.: 10 / 20 / 100 pJ per 32-bit word at 8 KiB / 32 KiB / 1 MiB,
    linear in between, clamped outside; a one-point table is flat."""
    from opentelemetry_instrumentation_spikeformer.monitor import lemaire

    word = 4
    assert lemaire.COST.per_byte(8 * 1024) * word == pytest.approx(10.0)
    assert lemaire.COST.per_byte(32 * 1024) * word == pytest.approx(20.0)
    assert lemaire.COST.per_byte(1024 * 1024) * word == pytest.approx(100.0)
    assert lemaire.COST.per_byte(4 * 1024) * word == pytest.approx(5.0)
    assert lemaire.COST.per_byte(1 << 30) * word == pytest.approx(100.0)
    cost = lemaire.Cost(breakpoints=((1024.0, 1.0), (2048.0, 3.0)))
    assert (cost.per_byte(0), cost.per_byte(1536), cost.per_byte(1e9)) == (1.0, 2.0, 3.0)
    assert lemaire.Cost(breakpoints=((0.0, 5.0),)).per_byte(123.0) == 5.0


def _new_steps_by_hand(frames) -> int:
    """Timesteps whose frame (all samples) is non-zero and differs from the last."""
    count = 0
    for t in range(len(frames)):
        if bool((frames[t] != 0).any()) and (t == 0 or not torch.equal(frames[t],
                                                                        frames[t - 1])):
            count += 1
    return count


@pytest.mark.parametrize("layout", ["steps_first", "flat_time_major", "flat_batch_major"])
@pytest.mark.parametrize("pattern", ["static", "first_then_zeros", "all_new", "repeats", "zeros"])
def test_new_steps_counts_the_timesteps_that_bring_a_new_input(layout, pattern):
    """What decides "once per static image": the encoding input's timesteps that
    are non-zero and new, in each layout a model feeds it, against a loop here."""
    from opentelemetry_instrumentation_spikeformer.monitor.dataflow import _new_steps

    steps, batch = 3, 2
    g = torch.Generator().manual_seed(7)
    image = torch.rand(batch, 2, 4, 4, generator=g) + 0.1
    frames = {  # [T, B, ...]
        "static": image.expand(steps, *image.shape),
        "first_then_zeros": torch.stack([image, image * 0, image * 0]),
        "all_new": torch.rand(steps, *image.shape, generator=g) + 0.1,
        "repeats": torch.stack([image, image, image * 2]),
        "zeros": torch.zeros(steps, *image.shape),
    }[pattern]
    x = {"steps_first": frames, "flat_time_major": frames.reshape(steps * batch, 2, 4, 4),
         "flat_batch_major": frames.transpose(0, 1).reshape(batch * steps, 2, 4, 4)}[layout]
    held, new = _new_steps(x, steps, batch, batch_major=layout == "flat_batch_major")
    assert held == steps
    assert new.dtype == torch.float64 and float(new) == _new_steps_by_hand(frames)


def test_new_steps_of_inputs_without_timesteps():
    """One timestep, a 1-D input, or a shape that holds neither T x B layout: one
    step, nothing to count."""
    from opentelemetry_instrumentation_spikeformer.monitor.dataflow import _new_steps

    x = torch.rand(6, 5)
    assert _new_steps(x, 1, 6, False) == (1, None)
    held, new = _new_steps(x[:1].expand(2, 5).reshape(2, 1, 5), 2, 1, False)  # T = 2, static
    assert (held, float(new)) == (2, 1.0)
    assert _new_steps(torch.rand(6), 3, 2, False) == (1, None)
    assert _new_steps(torch.rand(5, 2, 3), 3, 2, False) == (1, None)  # 5 is neither 3 nor 6
    assert _new_steps(torch.rand(2, 3, 4), 3, 2, False) == (1, None)  # B first: not T x B


class _Rows(nn.Module):
    """Weight ops whose inputs hold the time dimension ([T, B, ...] and the
    flattened [T*B, ...]) and one that does not: a head on the time average
    whose feature count equals the batch (it must still run once per sample)."""

    def __init__(self, batch: int) -> None:
        from spikingjelly.activation_based import neuron

        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Linear(3, batch)  # on the input [T, B, 3]
        self.sn = neuron.IFNode(step_mode="m", v_threshold=0.2)
        self.flat = nn.Linear(batch, 4)  # on the spikes [T*B, batch]
        self.head = nn.Linear(batch, 5)  # on their mean [B, batch]

    def forward(self, x):
        s = self.sn(self.enc(x))
        return self.flat(s.flatten(0, 1)), self.head(s.mean(0))


@pytest.mark.parametrize("batch", [1, 2])
def test_ann_baseline_counts_each_weight_op_once_per_sample(batch):
    """The ANN baseline of one sample: every weight op once (3 x B + B x 4 +
    B x 5 MACs), whether its input held T x B rows or B."""
    from spikingjelly.activation_based import functional

    model = _Rows(batch)
    monitor = monitor_model(model, "rows")
    with torch.no_grad():
        for seed in (0, 1):
            model(torch.rand(3, batch, 3, generator=torch.Generator().manual_seed(seed)))
            functional.reset_net(model)
    snap = monitor.read()
    monitor.detach()
    assert snap["forwards"] == 2
    assert snap["counts"]["ann_macs"] == 3 * batch + batch * 4 + batch * 5
