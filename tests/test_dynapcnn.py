"""Speck / DYNAP-CNN compile rows (DynapcnnNetwork construction and make_config)
on the real sinabs.backend.dynapcnn code, with a stand-in for the samna SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.subprocess
def test_dynapcnn_rows_with_samna_stand_in():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "stand_ins"), str(HERE)])}
    out = subprocess.run([sys.executable, str(HERE / "scripts" / "dynapcnn_rows.py")],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    spans = {s["attributes"]["code.function.name"]: s for s in result["spans"]
             if s["name"] == "spikeformer.compile sinabs"}
    build = spans["sinabs.backend.dynapcnn.dynapcnn_network.DynapcnnNetwork.__init__"]
    assert build["status"] == "UNSET"
    assert build["attributes"]["spikeformer.hardware.target"] == "dynapcnn"
    assert build["attributes"]["spikeformer.model.type"] == "Sequential"

    config = spans["sinabs.backend.dynapcnn.dynapcnn_network.DynapcnnNetwork.make_config"]
    # the stand-in cannot build a real chip configuration: sinabs 3.1.3 raises a TypeError
    assert result["error"] == "TypeError" and config["status"] == "ERROR"
    assert config["attributes"]["spikeformer.hardware.target"] == "speck2edevkit"
    assert config["attributes"]["spikeformer.model.type"] == "DynapcnnNetwork"
    assert config["attributes"]["error.type"] == result["error"]

    counted = {(a["target_hardware"], a["operation"]): v for a, v in result["compilations"]}
    assert counted == {("dynapcnn", "compile"): 1, ("speck2edevkit", "compile"): 1}
    assert [(a["target_hardware"], v) for a, v in result["errors"]] == [("speck2edevkit", 1)]
