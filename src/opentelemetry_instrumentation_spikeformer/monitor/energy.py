"""Per-operation energy tables and the per-inference estimate.

An SNN inference costs ``synops x synop_pj`` for the spike-driven layers,
``encoding MACs x mac_pj`` for the weight layers that run before the first
spiking layer (they see dense input every timestep), and optionally
``neuron updates x neuron_pj``. The ANN it came from costs ``MACs x mac_pj``
for one forward pass. Every figure is an estimate from published per-operation
energies (docs/monitor.md lists the sources); override them with
``OTEL_PYTHON_SPIKEFORMER_ENERGY_TABLE``.
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

# Horowitz, "Computing's energy problem (and what we can do about it)",
# ISSCC 2014, 45 nm, 0.9 V: FP32 add 0.9 pJ, FP32 mult 3.7 pJ (MAC 4.6 pJ);
# INT8 add 0.03 pJ, INT8 mult 0.2 pJ (MAC 0.23 pJ).
_MAC45_FP32 = 4.6
_HOROWITZ = "Horowitz, ISSCC 2014, 45 nm"


@dataclass(frozen=True)
class EnergyTable:
    name: str
    synop_pj: float  # one synaptic operation (spike x synapse, an accumulate)
    mac_pj: float  # one multiply-accumulate (ANN baseline and encoding layers)
    neuron_pj: float = 0.0  # one neuron state update per timestep
    source: str = ""


BUILTIN_TABLES: dict[str, EnergyTable] = {
    t.name: t
    for t in (
        EnergyTable("cmos45nm", 0.9, _MAC45_FP32, source=f"{_HOROWITZ}, FP32 add / mult+add"),
        EnergyTable("cmos45nm_int8", 0.03, 0.23, source=f"{_HOROWITZ}, INT8 add / mult+add"),
        EnergyTable("loihi", 23.6, _MAC45_FP32,
                    source="Davies et al., IEEE Micro 38(1) 2018, Table 2 (min. energy per "
                           f"synaptic spike op); ANN baseline {_HOROWITZ}"),
        EnergyTable("loihi2", 23.6, _MAC45_FP32,
                    source="estimate: Loihi (1) figure, Intel publishes no per-op energy for "
                           f"Loihi 2; ANN baseline {_HOROWITZ}"),
        EnergyTable("truenorth", 26.0, _MAC45_FP32,
                    source="Merolla et al., Science 345(6197) 2014 (26 pJ per synaptic event); "
                           f"ANN baseline {_HOROWITZ}"),
    )
}
_FIELDS = ("synop_pj", "mac_pj", "neuron_pj")
DEFAULT_TABLE = "loihi2"

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
            base = EnergyTable(key, values["synop_pj"], _MAC45_FP32)
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


def estimate(table: EnergyTable, *, synops: float, encoding_macs: float,
             neuron_updates: float, inferences: float, ann_macs: float) -> dict[str, Any]:
    """Energy per inference in mJ for the SNN and the ANN-equivalent, and their ratio."""
    snn_total = (synops * table.synop_pj + encoding_macs * table.mac_pj
                 + neuron_updates * table.neuron_pj) * PJ_TO_MJ
    snn = snn_total / inferences if inferences > 0 else None
    ann = ann_macs * table.mac_pj * PJ_TO_MJ if ann_macs > 0 else None
    ratio = ann / snn if ann is not None and snn else None
    return {
        "hardware": table.name,
        "snn_mj": snn,
        "ann_mj": ann,
        "ratio": ratio,
        "snn_total_mj": snn_total,
        "ann_macs": ann_macs,
        "synops_per_inference": synops / inferences if inferences > 0 else None,
        "encoding_macs_per_inference": encoding_macs / inferences if inferences > 0 else None,
        "table": {"synop_pj": table.synop_pj, "mac_pj": table.mac_pj,
                  "neuron_pj": table.neuron_pj, "source": table.source},
    }


def reestimate(snapshot: Mapping[str, Any], table: EnergyTable) -> dict[str, Any]:
    """The estimate of a ``SpikeMonitor.read()`` snapshot under another table:
    the same counts priced per operation by ``table`` (one run, several targets)."""
    est, inferences = snapshot["energy"], snapshot["inferences"]
    return estimate(
        table,
        synops=snapshot["totals"]["synops"],
        encoding_macs=(est["encoding_macs_per_inference"] or 0.0) * inferences,
        neuron_updates=snapshot["totals"]["neuron_steps"],
        inferences=inferences,
        ann_macs=est["ann_macs"],
    )
