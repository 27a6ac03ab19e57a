"""Per-operation energy tables and the per-inference estimate, the way the
spiking-transformer papers compute it (Spikformer, Zhou et al. ICLR 2023;
Spike-driven Transformer, Yao et al. NeurIPS 2023)::

    E_SNN = E_MAC x (encoding MACs, once per new input: once for a static image
                     repeated over T, T times for a per-timestep input)
          + E_MAC x (MACs of weight ops fed by real values downstream of spikes)
          + E_MAC x (synaptic operations of events that carry an amplitude)
          + E_AC  x (synaptic operations of spikes and spike sums)
          + E_neuron x (neuron updates)
    E_ANN = E_MAC x (MACs of the ANN's forward pass)         ratio = E_ANN / E_SNN

The default table is 45 nm CMOS (Horowitz, ISSCC 2014: FP32 MAC 4.6 pJ, add
0.9 pJ), the papers' choice. Chip tables are opt-in: they have no MAC of the
same technology, so they report no ANN baseline and no ratio (never a chip's
synop against a 45 nm MAC); an event with an amplitude costs them a synaptic
operation and encoding MACs (host work) are left unpriced. Every figure is an
estimate from published per-operation energies (docs/monitor.md lists the
sources); override them with ``OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..core.hardware import normalize
from ..environment_variables import OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE

_LOG = logging.getLogger(__name__)
MAX_TABLE_BYTES = 1 << 20  # an energy table is a few lines of JSON

PJ_TO_MJ = 1e-9  # 1 pJ = 1e-12 J = 1e-9 mJ

_HOROWITZ = "Horowitz, ISSCC 2014, 45 nm, 0.9 V"
_DEGNAN = ("Degnan, Marr, Hasler, IEEE TVLSI 24(1) 2016 (as tabled by keras-spiking 0.3.0): "
           "one synop = one neuron update = one MAC on {}; dense execution")
_DAVIES = "Davies et al., IEEE Micro 38(1) 2018, Table 2"
_HOPPNER = "Hoeppner et al., IEEE TCAS-I 66(8) 2019, arXiv 1903.08941 (as tabled by keras-spiking)"


@dataclass(frozen=True)
class EnergyTable:
    name: str
    synop_pj: float  # one synaptic operation driven by a spike (an accumulate)
    mac_pj: float | None  # one multiply-accumulate of the same technology; None: none known
    neuron_pj: float = 0.0  # one neuron state update per timestep
    source: str = ""

    @property
    def graded_pj(self) -> float:
        """An event with an amplitude: a MAC where the table has one."""
        return self.mac_pj if self.mac_pj is not None else self.synop_pj


BUILTIN_TABLES: dict[str, EnergyTable] = {
    t.name: t
    for t in (
        EnergyTable("cmos45nm", 0.9, 4.6,
                    source=f"{_HOROWITZ}: FP32 add 0.9 pJ, mult 3.7 + add 0.9 pJ (the papers' "
                           "method; neuron updates not priced)"),
        EnergyTable("cmos45nm_fp16", 0.4, 1.5,
                    source=f"{_HOROWITZ}: FP16 add 0.4 pJ, mult 1.1 + add 0.4 pJ"),
        EnergyTable("cmos45nm_int8", 0.03, 0.23,
                    source=f"{_HOROWITZ}: INT8 add 0.03 pJ, mult 0.2 + add 0.03 pJ"),
        EnergyTable("loihi", 23.6, None, 81.0,
                    source=f"{_DAVIES}: 23.6 pJ minimum per synaptic spike op (pre-silicon "
                           "figure), 81 pJ per active neuron update (52 inactive); chip, no "
                           "ANN baseline"),
        EnergyTable("truenorth", 26.0, None,
                    source="Merolla et al., Science 345(6197) 2014: 26 pJ per synaptic event, "
                           "all-in (neuron updates included); chip, no ANN baseline"),
        EnergyTable("spinnaker", 13300.0, None, 26000.0,
                    source=f"{_HOPPNER}: 13.3 nJ per synaptic event, 26 nJ per neuron update; "
                           "chip, no ANN baseline"),
        EnergyTable("spinnaker2", 450.0, None, 2190.0,
                    source=f"{_HOPPNER}: 0.45 nJ per synaptic event, 2.19 nJ per neuron "
                           "update (prototype); chip, no ANN baseline"),
        EnergyTable("cpu_degnan2016", 8600.0, 8600.0, 8600.0,
                    source=_DEGNAN.format("an Intel i7-4960X")),
        EnergyTable("gpu_degnan2016", 300.0, 300.0, 300.0,
                    source=_DEGNAN.format("an Nvidia GTX Titan Black")),
        EnergyTable("arm_degnan2016", 900.0, 900.0, 900.0,
                    source=_DEGNAN.format("an ARM Cortex-A")),
    )
}
_FIELDS = ("synop_pj", "mac_pj", "neuron_pj")
DEFAULT_TABLE = "cmos45nm"

_cache: dict[str, dict[str, EnergyTable]] = {}
_warned_hardware: set[str] = set()


class _BadTable(ValueError):
    pass


def _parse(raw: str) -> dict[str, EnergyTable]:
    text = raw.strip()
    if not text.startswith("{"):
        try:
            with open(os.path.expanduser(text), "rb") as handle:
                data = handle.read(MAX_TABLE_BYTES + 1)
        except OSError as exc:
            raise _BadTable(f"cannot read file {text!r} ({exc.strerror})") from None
        if len(data) > MAX_TABLE_BYTES:
            raise _BadTable(f"file {text!r} is larger than {MAX_TABLE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadTable(f"file {text!r} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _BadTable(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise _BadTable("expected a JSON object {table: {field: pJ}}")
    tables = dict(BUILTIN_TABLES)
    for name, fields in data.items():
        if not isinstance(name, str) or not name.strip() or not isinstance(fields, dict):
            raise _BadTable(f"entry {name!r}: expected {{'synop_pj': ..., 'mac_pj': ...}}")
        values: dict[str, float] = {}
        for key, value in fields.items():
            if key not in _FIELDS:
                raise _BadTable(f"entry {name!r}: unknown field {key!r} (use {', '.join(_FIELDS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise _BadTable(f"entry {name!r}: {key} must be a number >= 0")
            values[key] = float(value)
        base = find(name, tables)
        key = base.name if base is not None else name.strip().lower()
        if base is None:
            if "synop_pj" not in values:
                raise _BadTable(f"new entry {name!r} needs synop_pj")
            base = EnergyTable(key, values["synop_pj"], None)
        tables[key] = replace(base, **values, source=f"{base.source}; overridden".lstrip("; "))
    return tables


def tables(raw: str | None) -> dict[str, EnergyTable]:
    """Built-in tables merged with the override; a bad override warns once and
    leaves the built-ins in force."""
    raw = raw or ""
    found = _cache.get(raw)
    if found is not None:
        return found
    if not raw.strip():
        found = dict(BUILTIN_TABLES)
    else:
        try:
            found = _parse(raw)
        except _BadTable as exc:
            _LOG.warning("%s is invalid (%s); using the built-in energy tables",
                         OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE, exc)
            found = dict(BUILTIN_TABLES)
    _cache[raw] = found
    return found


def find(name: Any, known: Mapping[str, EnergyTable]) -> EnergyTable | None:
    """The table called ``name`` under the hardware-label normalisation
    (``Loihi-2``, ``loihi_2`` and ``loihi2:0`` are all ``loihi2``)."""
    key = normalize(name)
    return next((t for n, t in known.items() if normalize(n) == key), None) if key else None


def _warn_once(key: str, using: str) -> None:
    if key and key != "none" and key not in _warned_hardware:
        _warned_hardware.add(key)
        _LOG.warning("no energy table for hardware %r; using %r (add one with "
                     "OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE)", key, using)


def select(hardware: str | None, fallback: str, raw: str | None) -> EnergyTable:
    """The table for ``hardware``; an unknown name falls back (one warning each)."""
    known = tables(raw)
    found = find(hardware, known)
    if found is not None:
        return found
    chosen = find(fallback, known)
    if chosen is None:
        _warn_once(normalize(fallback), DEFAULT_TABLE)
        chosen = known[DEFAULT_TABLE]
    if normalize(hardware) != normalize(fallback):
        _warn_once(normalize(hardware), chosen.name)
    return chosen


def estimate(table: EnergyTable, *, synops: Mapping[str, float], encoding_macs: float,
             graded_macs: float, neuron_updates: float, inferences: float,
             ann_macs: float) -> dict[str, Any]:
    """Energy per inference in mJ of the SNN and of the ANN it came from, and
    their ratio (module docstring). ``synops``: SOPs by input category
    (``spikes``, ``spike_sums``, ``graded``); ``ann_macs`` per inference."""
    accumulates = synops.get("spikes", 0.0) + synops.get("spike_sums", 0.0)
    graded = synops.get("graded", 0.0)
    mac = table.mac_pj
    macs = encoding_macs + graded_macs
    terms = {
        "synops": accumulates * table.synop_pj,
        "graded_synops": graded * table.graded_pj,
        "macs": macs * mac if mac is not None else 0.0,
        "neurons": neuron_updates * table.neuron_pj,
    }
    snn_total = sum(terms.values()) * PJ_TO_MJ
    per = 1.0 / inferences if inferences > 0 else None
    snn = snn_total * per if per is not None else None
    ann = ann_macs * mac * PJ_TO_MJ if ann_macs > 0 and mac is not None else None
    ratio = ann / snn if ann is not None and snn else None
    return {
        "hardware": table.name,
        "snn_mj": snn,
        "ann_mj": ann,
        "ratio": ratio,
        "snn_total_mj": snn_total,
        "ann_macs": ann_macs,
        "synops_per_inference": (accumulates + graded) * per if per is not None else None,
        "encoding_macs_per_inference": encoding_macs * per if per is not None else None,
        "graded_macs_per_inference": graded_macs * per if per is not None else None,
        "unpriced_macs_per_inference": macs * per if per is not None and mac is None else 0.0,
        "terms_mj": {k: v * PJ_TO_MJ * per if per is not None else None
                     for k, v in terms.items()},
        "table": {"synop_pj": table.synop_pj, "mac_pj": table.mac_pj,
                  "neuron_pj": table.neuron_pj, "source": table.source},
    }


def reestimate(snapshot: Mapping[str, Any], table: EnergyTable) -> dict[str, Any]:
    """The estimate of a ``SpikeMonitor.read()`` snapshot under another table:
    the same counts priced per operation by ``table`` (one run, several targets)."""
    counts = snapshot["counts"]
    return estimate(
        table,
        synops=snapshot["totals"]["synops_by_input"],
        encoding_macs=counts["encoding_macs"],
        graded_macs=counts["graded_macs"],
        neuron_updates=snapshot["totals"]["neuron_steps"],
        inferences=snapshot["inferences"],
        ann_macs=counts["ann_macs"],
    )


def compute_only(snapshot: Mapping[str, Any], e_mac_pj: float, e_ac_pj: float) -> dict[str, float]:
    """spikingjelly's ``SimpleEnergyProfiler`` compute energy from the monitor's
    counts: ``e_mac x MAC + e_ac x AC`` with its ``MACCounter`` / ``ACCounter``
    rules (MAC: dense weight ops with no spike operand + BatchNorm affine; AC:
    spike-driven weight ops + BatchNorm, elementwise add/sub, reductions,
    average pooling, sigmoid, inside neurons too). Totals over the counted
    forwards, in pJ."""
    counts = snapshot["counts"]
    mac = counts["nonbinary_weight_macs"] + counts["census_mac_bn"]
    ac = counts["binary_weight_synops"] + counts["census_ac"] + counts["census_spike_adds"]
    return {"mac": mac, "ac": ac, "synop": counts["binary_weight_synops"],
            "energy_mac_pj": mac * e_mac_pj, "energy_ac_pj": ac * e_ac_pj,
            "energy_compute_pj": mac * e_mac_pj + ac * e_ac_pj}
