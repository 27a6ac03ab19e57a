"""sPyNNaker on a virtual SpiNNaker board, traced by the real
``opentelemetry-instrument`` launcher around a plain PyNN script: spans against
sPyNNaker's own provenance database, resources against its own reports.

The user config is written under a temp dir that ``XDG_CONFIG_HOME`` (and
``HOME``) point at; reports go there too. Spans come over OTLP/HTTP to a
receiver in this process (nanosecond timestamps)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from otlp_receiver import OtlpReceiver
from opentelemetry_instrumentation_spikeformer.tools.virtual_spinnaker import write_config

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.subprocess
COMPILE = "spikeformer.compile spynnaker"
TOLERANCE = 0.20
# sPyNNaker's own record of the mapping, to compare our numbers with
REPORTS = {"Reports": {option: "True" for option in (
    "write_json_machine", "write_json_placements", "write_router_summary_report",
    "write_compressed", "write_compression_summary", "keep_json_files")}}


def _require_spynnaker() -> None:
    if importlib.util.find_spec("spynnaker") is None:
        pytest.fail("sPyNNaker missing: install the extra [spinnaker] (scripts/bootstrap.sh)",
                    pytrace=False)


def _launch(tmp: Path, *args: str) -> tuple[OtlpReceiver, dict]:
    _require_spynnaker()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with OtlpReceiver() as receiver:
        env.update(receiver.env())
        env.update(write_config(tmp, REPORTS), HOME=str(tmp), PIP_NO_INDEX="1",
                   OTEL_SERVICE_NAME="pynn-test")
        out_file = tmp / "out.json"
        done = subprocess.run(
            [str(BIN / "opentelemetry-instrument"), sys.executable,
             str(HERE / "scripts" / "pynn_map.py"), str(out_file), *args],
            capture_output=True, text=True, timeout=240, env=env, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp / ".spynnaker.cfg").exists()  # it found ours: none written into HOME
    return receiver, json.loads(out_file.read_text())


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """Two sim.run calls (the first maps) and sim.end, under the launcher."""
    return _launch(tmp_path_factory.mktemp("spinnaker"))


@pytest.fixture(scope="module")
def too_big(tmp_path_factory):
    return _launch(tmp_path_factory.mktemp("spinnaker-fail"), "--too-big")


# -- sPyNNaker's own records -----------------------------------------------
def _timer_rows(db: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT category_id, algorithm, work, time_taken, skip_reason "
                           "FROM timer_provenance ORDER BY timer_id").fetchall()


def _category_rows(db: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT category_id, category, time_taken FROM "
                           "category_timer_provenance ORDER BY category_id").fetchall()


def _reports(run_dir: str) -> dict:
    """Machine, placements and routing summaries as sPyNNaker wrote them."""
    json_dir = Path(run_dir) / "json_files"
    machine = json.loads((json_dir / "machine.json").read_text())
    placements = json.loads((json_dir / "placements.json").read_text())
    usable = {}
    for x, y, info in machine["chips"]:
        kind = "ethernetResources" if info.get("ipAddress") else "standardResources"
        usable[(x, y)] = info["cores"] - machine[kind]["monitors"]
    on_chip = Counter((p["x"], p["y"]) for p in placements)
    app = Counter((p["x"], p["y"]) for p in placements
                  if not p["vertex_label"].startswith("SYSTEM:"))

    def summary(name: str) -> tuple[int, int]:
        found = re.search(r"Total entries (\d+), max per chip (\d+)",
                          (Path(run_dir) / name).read_text())
        return int(found.group(1)), int(found.group(2))

    return {"chips": (len(app), len(usable)), "cores": (len(placements), sum(usable.values())),
            "utilization": {f"{x},{y}": on_chip[(x, y)] / usable[(x, y)] for x, y in app},
            "uncompressed": summary("routing_summary.rpt"),
            "compressed": summary("compressed_routing_summary.rpt")}


# -- spans -------------------------------------------------------------------
def _steps(receiver):
    return sorted((s for s in receiver.spans if "spinnaker.step" in s.attributes),
                  key=lambda s: s.start_ns)


def _categories(receiver):
    return sorted((s for s in receiver.spans if "spinnaker.category" in s.attributes
                   and "spinnaker.step" not in s.attributes), key=lambda s: s.start_ns)


def _close(ms: float, reference_ms: float) -> bool:
    return abs(ms - reference_ms) <= TOLERANCE * reference_ms


def _check_steps_match_rows(receiver, db):
    rows, steps = _timer_rows(db), _steps(receiver)
    assert len(steps) == len(rows) > 10
    assert [s.attributes["spinnaker.step"] for s in steps] == [r[1] for r in rows]
    assert [s.name for s in steps] == [f"spikeformer.stage {r[1]}" for r in rows]
    off = [(s.name, s.ms, r[3]) for s, r in zip(steps, rows) if not _close(s.ms, r[3])]
    assert not off, off
    return rows, steps


def test_step_spans_match_timer_provenance_one_to_one(mapped):
    receiver, out = mapped
    rows, steps = _check_steps_match_rows(receiver, out["db"])
    outcomes = Counter(s.attributes["spinnaker.step.outcome"] for s in steps)
    assert outcomes["ok"] == sum(r[4] is None for r in rows) > 10
    assert outcomes["skipped"] == sum(r[4] is not None for r in rows) > 10
    for step, row in zip(steps, rows):
        assert step.attributes.get("spinnaker.step.skip_reason") == row[4], step.name
        assert step.attributes["spinnaker.step.work"] == row[2]
        assert not step.error
    reasons = {s.attributes.get("spinnaker.step.skip_reason") for s in steps}
    assert "virtual_board" in reasons  # loading and running are skipped on a virtual board


def test_category_spans_match_category_rows_and_parent_the_steps(mapped):
    receiver, out = mapped
    categories = [c for c in _category_rows(out["db"]) if c[1] != "Waiting"]
    spans = _categories(receiver)
    assert [s.name for s in spans] == [f"spikeformer.stage {c[1]}" for c in categories]
    assert all(abs(s.ms - c[2]) <= TOLERANCE * c[2] + 0.5 for s, c in zip(spans, categories))
    by_id = {c[0]: s.span_id for c, s in zip(categories, spans)}
    rows, steps = _timer_rows(out["db"]), _steps(receiver)
    assert all(step.parent_id == by_id[row[0]] for step, row in zip(steps, rows)
               if row[0] in by_id)
    assert "spikeformer.stage Mapping Stage" in {s.name for s in spans}


def test_one_compile_span_per_run_and_only_the_first_maps(mapped):
    receiver, out = mapped
    compiles = sorted((s for s in receiver.spans if s.name == COMPILE), key=lambda s: s.start_ns)
    assert [c.attributes["spinnaker.mapped"] for c in compiles] == [True, False]
    assert all(c.attributes["spikeformer.hardware.target"] == "spinnaker" and not c.error
               for c in compiles)
    assert compiles[0].attributes["spinnaker.provenance_db"] == out["db"]
    ids = {c.span_id for c in compiles}
    run_categories = [s for s in _categories(receiver) if s.attributes["spinnaker.category"]
                      in ("RUN_OTHER", "MAPPING", "LOADING", "RUN_LOOP")]
    assert run_categories and all(s.parent_id in ids for s in run_categories)
    setup = [s for s in _categories(receiver) if s.attributes["spinnaker.category"] == "SETTING_UP"]
    assert setup and setup[0].parent_id is None  # sim.setup() is no compile


def test_resources_equal_spynnakers_own_reports(mapped):
    receiver, out = mapped
    ref = _reports(out["run_dir"])
    span = next(s for s in receiver.spans if s.name == COMPILE and s.attributes["spinnaker.mapped"])
    attrs = span.attributes
    assert (attrs["spinnaker.chips_used"], attrs["spinnaker.chips_available"]) == ref["chips"]
    assert (attrs["spinnaker.cores_used"], attrs["spinnaker.cores_available"]) == ref["cores"]
    assert ref["chips"][0] > 1 and ref["chips"][1] == 48  # spread over chips of one board
    for table in ("uncompressed", "compressed"):
        assert (attrs[f"spinnaker.routing_entries_{table}"],
                attrs[f"spinnaker.routing_entries_{table}_max"]) == ref[table]
    assert ref["compressed"][0] < ref["uncompressed"][0]  # the compressor really ran

    def gauge(name):
        return {dict(k).get("state") or dict(k).get("hw.id") or
                (dict(k)["table"], dict(k)["statistic"]): v for k, v in receiver.gauge(name).items()}

    assert gauge("neuromorphic.compile.chips") == dict(zip(("used", "available"), ref["chips"]))
    assert gauge("neuromorphic.compile.cores") == dict(zip(("used", "available"), ref["cores"]))
    assert gauge("neuromorphic.compile.core_utilization") == pytest.approx(ref["utilization"])
    assert gauge("neuromorphic.compile.routing_entries") == {
        (table, stat): ref[table][i] for table in ("uncompressed", "compressed")
        for i, stat in enumerate(("total", "max_per_chip"))}
    keys = {key for name in ("neuromorphic.compile.chips", "neuromorphic.compile.cores",
                             "neuromorphic.compile.core_utilization",
                             "neuromorphic.compile.routing_entries")
            for attrs in receiver.gauge(name) for key, _ in attrs}
    assert keys == {"target_hardware", "state", "hw.id", "table", "statistic"}


def test_a_failed_placement_fails_its_step_and_the_compile(too_big):
    receiver, out = too_big
    assert out["error"] == "PacmanPlaceException"
    rows, steps = _check_steps_match_rows(receiver, out["db"])
    placer = next(s for s in steps if s.attributes["spinnaker.step"] == "Application Placer")
    assert placer.error and "exception" in placer.events
    assert placer.attributes["error.type"].endswith("PacmanPlaceException")
    assert placer.attributes["spinnaker.step.outcome"] == "exception"
    assert next(r for r in rows if r[1] == "Application Placer")[4] == "PacmanPlaceException"
    compile_span = next(s for s in receiver.spans if s.name == COMPILE)
    assert compile_span.error and compile_span.attributes["error.type"].endswith(
        "PacmanPlaceException")
    assert not receiver.gauge("neuromorphic.compile.chips")  # nothing was mapped
