"""The energy tables and the estimate on their own (no model, no torch): the
published per-operation figures, every rule of the override parser and its
messages, the hardware fallback and its warnings, and the estimate's arithmetic
on literal counts. Expected values are the papers' figures and hand sums."""

from __future__ import annotations

import json
import logging

import pytest

from opentelemetry_instrumentation_spikeformer.monitor import energy

ENV = "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE"
B = energy.BUILTIN_TABLES


# -- the published figures ------------------------------------------------------
def test_horowitz_45nm_figures():
    """Horowitz, ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V): an add is the synop, a
    mult + add the MAC. INT8: add 0.03 pJ, mult 0.2 pJ; FP16: add 0.4, mult 1.1;
    FP32: add 0.9, mult 3.7. A swap of add and MAC, or of the precisions, fails."""
    assert (B["cmos45nm_int8"].synop_pj, B["cmos45nm_int8"].mac_pj) == (0.03, 0.23)
    assert B["cmos45nm_int8"].mac_pj == pytest.approx(0.2 + 0.03)
    assert (B["cmos45nm_fp16"].synop_pj, B["cmos45nm_fp16"].mac_pj) == (0.4, 1.5)
    assert B["cmos45nm_fp16"].mac_pj == pytest.approx(1.1 + 0.4)
    assert (B["cmos45nm"].synop_pj, B["cmos45nm"].mac_pj) == (0.9, 4.6)
    assert B["cmos45nm"].mac_pj == pytest.approx(3.7 + 0.9)
    for name in ("cmos45nm", "cmos45nm_fp16", "cmos45nm_int8"):
        assert B[name].neuron_pj == 0.0  # the papers do not price neuron updates
        assert B[name].synop_pj < B[name].mac_pj
    assert "INT8 add 0.03 pJ, mult 0.2 + add 0.03 pJ" in B["cmos45nm_int8"].source
    assert "FP16 add 0.4 pJ, mult 1.1 + add 0.4 pJ" in B["cmos45nm_fp16"].source
    assert "Horowitz, ISSCC 2014" in B["cmos45nm_int8"].source


def test_chip_figures():
    # TrueNorth (Merolla et al. 2014): 26 pJ per synaptic event, all-in
    assert (B["truenorth"].synop_pj, B["truenorth"].mac_pj, B["truenorth"].neuron_pj) \
        == (26.0, None, 0.0)
    assert (B["loihi"].synop_pj, B["loihi"].mac_pj, B["loihi"].neuron_pj) == (23.6, None, 81.0)
    assert set(B) == {"cmos45nm", "cmos45nm_fp16", "cmos45nm_int8", "loihi", "truenorth",
                      "spinnaker", "spinnaker2", "cpu_degnan2016", "gpu_degnan2016",
                      "arm_degnan2016"}
    assert all(name == table.name for name, table in B.items())


def test_graded_event_costs_a_mac_where_the_table_has_one():
    assert B["cmos45nm_int8"].graded_pj == 0.23
    assert B["loihi"].graded_pj == 23.6  # no MAC: a synaptic operation


# -- the override parser ----------------------------------------------------------
def parse_error(raw: str) -> str:
    with pytest.raises(energy._BadTable) as info:
        energy._parse(raw)
    return str(info.value)


@pytest.mark.parametrize(("raw", "message"), [
    ("{not json", "not JSON (Expecting property name enclosed in double quotes)"),
    ("[1, 2]", "cannot read file '[1, 2]' (No such file or directory)"),  # not {: a path
    ('{"x": 1}', "entry 'x': expected {'synop_pj': ..., 'mac_pj': ...}"),
    ('{"  ": {"synop_pj": 1}}', "entry '  ': expected {'synop_pj': ..., 'mac_pj': ...}"),
    ('{"": {"synop_pj": 1}}', "entry '': expected {'synop_pj': ..., 'mac_pj': ...}"),
    ('{"cmos45nm": {"synop_joules": 1}}',
     "entry 'cmos45nm': unknown field 'synop_joules' (use synop_pj, mac_pj, neuron_pj)"),
    ('{"cmos45nm": {"synop_pj": -1}}', "entry 'cmos45nm': synop_pj must be a number >= 0"),
    ('{"cmos45nm": {"mac_pj": -0.5}}', "entry 'cmos45nm': mac_pj must be a number >= 0"),
    ('{"cmos45nm": {"synop_pj": true}}', "entry 'cmos45nm': synop_pj must be a number >= 0"),
    ('{"cmos45nm": {"synop_pj": "1"}}', "entry 'cmos45nm': synop_pj must be a number >= 0"),
    ('{"cmos45nm": {"synop_pj": NaN}}', "entry 'cmos45nm': synop_pj must be a number >= 0"),
    ('{"cmos45nm": {"neuron_pj": Infinity}}',
     "entry 'cmos45nm': neuron_pj must be a number >= 0"),
    ('{"newchip": {"mac_pj": 1}}', "new entry 'newchip' needs synop_pj"),
])
def test_bad_override_messages(raw, message):
    assert parse_error(raw) == message


def test_override_keeps_builtins_and_marks_the_source():
    found = energy._parse(' {"CMOS-45nm": {"synop_pj": 0, "neuron_pj": 2}} ')
    table = found["cmos45nm"]  # the built-in, found under the label normalisation
    assert (table.name, table.synop_pj, table.mac_pj, table.neuron_pj) == ("cmos45nm", 0.0,
                                                                          4.6, 2.0)
    assert type(table.synop_pj) is float and type(table.neuron_pj) is float
    assert table.source == B["cmos45nm"].source + "; overridden"
    assert "CMOS-45nm" not in found
    assert found["loihi"] is B["loihi"] and found["cmos45nm_int8"] is B["cmos45nm_int8"]
    assert energy.BUILTIN_TABLES["cmos45nm"].synop_pj == 0.9  # the built-ins untouched


def test_a_new_entry():
    found = energy._parse('{" My_Chip ": {"synop_pj": 2}}')
    table = found["my_chip"]  # stripped, lower case
    assert (table.name, table.synop_pj, table.mac_pj, table.neuron_pj, table.source) \
        == ("my_chip", 2.0, None, 0.0, "overridden")
    assert len(found) == len(B) + 1


def test_override_from_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.json").write_text(json.dumps({"chip": {"synop_pj": 1.5, "mac_pj": 3}}))
    found = energy._parse(" ~/t.json\n")  # stripped, ~ expanded
    assert (found["chip"].synop_pj, found["chip"].mac_pj) == (1.5, 3.0)


def test_override_file_errors(tmp_path):
    missing = tmp_path / "none.json"
    assert parse_error(str(missing)) \
        == f"cannot read file {str(missing)!r} (No such file or directory)"
    big = tmp_path / "big.json"
    big.write_bytes(b" " * energy.MAX_TABLE_BYTES + b"{}")  # one byte over
    assert parse_error(str(big)) == f"file {str(big)!r} is larger than 1048576 bytes"
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"caf\u00e9": {"synop_pj": 1}}'.encode("latin-1"))
    assert parse_error(str(latin)) == f"file {str(latin)!r} is not UTF-8 text"
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    assert parse_error(str(array)) == "expected a JSON object {table: {field: pJ}}"
    limit = tmp_path / "limit.json"  # exactly the limit: read
    body = json.dumps({"chip": {"synop_pj": 1}}).encode()
    limit.write_bytes(body + b" " * (energy.MAX_TABLE_BYTES - len(body)))
    assert energy._parse(str(limit))["chip"].synop_pj == 1.0
    assert energy.MAX_TABLE_BYTES == 1 << 20


def test_tables_caches_per_value_and_warns_once(caplog):
    assert energy.tables(None) == energy.tables("") == energy.tables("  ") == B
    assert energy.tables("  ") is not B  # a copy: the built-ins cannot be changed through it
    raw = '{"chip": {"synop_pj": 1}}'
    first = energy.tables(raw)
    assert energy.tables(raw) is first and first["chip"].synop_pj == 1.0
    with caplog.at_level(logging.WARNING, logger=energy.__name__):
        bad = energy.tables("{oops")
        assert energy.tables("{oops") is bad
    assert bad == B
    assert [r.getMessage() for r in caplog.records] == [
        f"{ENV} is invalid (not JSON (Expecting property name enclosed in double quotes)); "
        "using the built-in energy tables"]


# -- hardware selection -------------------------------------------------------------
def test_find_under_the_label_normalisation():
    assert energy.find("SpiNNaker-2:1", B) is B["spinnaker2"]
    assert energy.find("CMOS45NM_INT8", B) is B["cmos45nm_int8"]
    assert energy.find("speck2f", B) is None
    assert energy.find(None, B) is None
    assert energy.find("", {"": B["loihi"]}) is None


def test_select_and_its_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger=energy.__name__):
        assert energy.select("Loihi", "cmos45nm", None) is B["loihi"]
        assert energy.select(None, "truenorth", None) is B["truenorth"]
        assert energy.select("none", "truenorth", None) is B["truenorth"]
        assert caplog.records == []
        assert energy.select("speck2f:0", "truenorth", None) is B["truenorth"]
        assert energy.select("Speck2F", "truenorth", None) is B["truenorth"]
    assert [r.getMessage() for r in caplog.records] == [
        "no energy table for hardware 'speck2f'; using 'truenorth' (add one with "
        "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE)"]


def test_select_with_an_unknown_fallback(caplog):
    with caplog.at_level(logging.WARNING, logger=energy.__name__):
        assert energy.select("xylo", "xylo", None) is B["cmos45nm"]  # one name: one warning
        assert energy.select("speck", "xylo", None) is B["cmos45nm"]
    assert [r.getMessage() for r in caplog.records] == [
        "no energy table for hardware 'xylo'; using 'cmos45nm' (add one with "
        "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE)",
        "no energy table for hardware 'speck'; using 'cmos45nm' (add one with "
        "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE)"]


def test_select_reads_the_override():
    raw = '{"xylo": {"synop_pj": 7}}'
    assert energy.select("Xylo", "cmos45nm", raw).synop_pj == 7.0


# -- the estimate -------------------------------------------------------------------
def estimate(table, **counts):
    args = dict(synops={"spikes": 100.0, "spike_sums": 20.0, "graded": 10.0},
                encoding_macs=1000.0, graded_macs=500.0, neuron_updates=40.0,
                inferences=4.0, ann_macs=3000.0)
    return energy.estimate(table, **{**args, **counts})


def test_estimate_int8_by_hand():
    est = estimate(B["cmos45nm_int8"])
    # pJ: accumulates 120 x 0.03, graded 10 x 0.23, MACs 1500 x 0.23, neurons 40 x 0
    assert est["terms_mj"] == pytest.approx(
        {"synops": 3.6e-9 / 4, "graded_synops": 2.3e-9 / 4, "macs": 345e-9 / 4,
         "neurons": 0.0})
    assert est["snn_total_mj"] == pytest.approx(350.9e-9)
    assert est["snn_mj"] == pytest.approx(350.9e-9 / 4)
    assert est["ann_mj"] == pytest.approx(3000 * 0.23e-9)  # per inference already
    assert est["ratio"] == pytest.approx(690 / (350.9 / 4))
    assert est["hardware"] == "cmos45nm_int8" and est["ann_macs"] == 3000.0
    assert est["synops_per_inference"] == pytest.approx(130 / 4)
    assert est["encoding_macs_per_inference"] == pytest.approx(250.0)
    assert est["graded_macs_per_inference"] == pytest.approx(125.0)
    assert est["unpriced_macs_per_inference"] == 0.0
    assert est["table"] == {"synop_pj": 0.03, "mac_pj": 0.23, "neuron_pj": 0.0,
                            "source": B["cmos45nm_int8"].source}


def test_estimate_on_a_chip():
    est = estimate(B["loihi"])
    # no MAC: graded events are synaptic operations, MACs unpriced, no baseline
    assert est["terms_mj"] == pytest.approx(
        {"synops": 120 * 23.6e-9 / 4, "graded_synops": 10 * 23.6e-9 / 4, "macs": 0.0,
         "neurons": 40 * 81e-9 / 4})
    assert est["snn_mj"] == pytest.approx((130 * 23.6 + 40 * 81) * 1e-9 / 4)
    assert est["ann_mj"] is None and est["ratio"] is None
    assert est["unpriced_macs_per_inference"] == pytest.approx(1500 / 4)


def test_estimate_edges():
    none = estimate(B["cmos45nm"], inferences=0.0)
    assert none["snn_total_mj"] > 0
    for key in ("snn_mj", "ratio", "synops_per_inference", "encoding_macs_per_inference",
                "graded_macs_per_inference"):
        assert none[key] is None, key
    assert none["terms_mj"] == dict.fromkeys(("synops", "graded_synops", "macs", "neurons"))
    assert none["ann_mj"] == pytest.approx(3000 * 4.6e-9)
    assert estimate(B["loihi"], inferences=0.0)["unpriced_macs_per_inference"] == 0.0
    assert estimate(B["cmos45nm"], ann_macs=0.0)["ann_mj"] is None
    assert estimate(B["cmos45nm"], ann_macs=1.0)["ann_mj"] == pytest.approx(4.6e-9)  # one MAC
    assert estimate(B["cmos45nm"], ann_macs=0.0)["ratio"] is None
    silent = estimate(B["cmos45nm"], synops={}, encoding_macs=0.0, graded_macs=0.0,
                      neuron_updates=0.0)
    assert silent["snn_mj"] == 0.0 and silent["ratio"] is None and silent["ann_mj"] > 0
    only = estimate(B["cmos45nm"], synops={"graded": 2.0}, encoding_macs=0.0,
                    graded_macs=0.0, inferences=1.0)
    assert only["terms_mj"]["synops"] == 0.0
    assert only["snn_mj"] == pytest.approx(2 * 4.6e-9)
    assert estimate(B["cmos45nm"], synops={"spikes": 3.0}, encoding_macs=0.0, graded_macs=0.0,
                    inferences=1.0)["snn_mj"] == pytest.approx(3 * 0.9e-9)
    assert estimate(B["cmos45nm"], synops={"spike_sums": 5.0}, encoding_macs=0.0,
                    graded_macs=0.0, inferences=1.0)["snn_mj"] == pytest.approx(5 * 0.9e-9)


def snapshot():
    return {"counts": {"encoding_macs": 1000.0, "graded_macs": 500.0, "ann_macs": 3000.0,
                       "nonbinary_weight_macs": 7.0, "census_mac_bn": 3.0,
                       "binary_weight_synops": 11.0, "census_ac": 5.0,
                       "census_spike_adds": 2.0},
            "totals": {"synops_by_input": {"spikes": 100.0, "spike_sums": 20.0, "graded": 10.0},
                       "neuron_steps": 40.0},
            "inferences": 4.0}


def test_reestimate_prices_a_snapshot_again():
    assert energy.reestimate(snapshot(), B["cmos45nm_int8"]) == estimate(B["cmos45nm_int8"])
    assert energy.reestimate(snapshot(), B["loihi"]) == estimate(B["loihi"])


def test_compute_only_is_spikingjellys_sum():
    # MAC = 7 dense + 3 BatchNorm; AC = 11 spike-driven + 5 census + 2 spike adds
    assert energy.compute_only(snapshot(), 4.6, 0.9) == pytest.approx(
        {"mac": 10.0, "ac": 18.0, "synop": 11.0, "energy_mac_pj": 46.0,
         "energy_ac_pj": 16.2, "energy_compute_pj": 62.2})
