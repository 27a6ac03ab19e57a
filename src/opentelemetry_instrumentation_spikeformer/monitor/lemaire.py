"""Memory-access-aware energy: Lemaire et al.'s analytical model, computed the
way spikingjelly 2.0.0's ``LemaireEnergyProfiler`` computes it, from the
monitor's counts instead of a profiling pass.

Lemaire, Cordone, Castagnetti, Novac, Courtois, Miramond, "An analytical
estimation of spiking neural networks energy efficiency", ICONIP 2022
(arXiv 2210.13107). Per ``nn.Linear`` / ``nn.Conv*`` call: with a spike input,
per input event ``N_out`` synaptic ACs (conv: ``C_out/g * prod(ceil(k/s))``),
weight and membrane-potential reads and writes per synapse reached, the event
read from a FIFO; with a dense input, dense MACs and dense reads. Per neuron
and timestep: the potential read and written, an AC per output spike (a MAC per
update for leaky neurons), the spike written to a FIFO. A memory access costs
``bytes x`` a piecewise-linear function of the buffer's capacity (8 KiB: 10 pJ,
32 KiB: 20 pJ, 1 MiB: 100 pJ per 32-bit word); AC 0.1 pJ, MAC 3.2 pJ.

What differs from the profiler: "spike input" is the monitor's dataflow class
(events of binary sources, moved or max-pooled), not a value test per call;
neurons are every monitored neuron (the profiler knows IFNode and LIFNode only),
leaky where its framework rule says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..frameworks import base as fb
from . import dataflow as df


@dataclass(frozen=True)
class Cost:
    e_add_pj: float = 0.1
    e_mul_pj: float = 3.1
    width_bytes: int = 4
    fifo_elements: int = 1000
    # (buffer capacity in bytes, pJ per byte), linear in between.
    breakpoints: tuple = ((0.0, 0.0), (8 * 1024.0, 2.5), (32 * 1024.0, 5.0),
                          (1024 * 1024.0, 25.0))

    def per_byte(self, capacity: float) -> float:
        points = self.breakpoints
        capacity = max(points[0][0], min(capacity, points[-1][0]))
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if capacity <= x1:
                return y0 + (y1 - y0) / (x1 - x0) * (capacity - x0)
        return points[-1][1]


COST = Cost()


_COUNTS = ("ac", "mac", "synop", "acc_addr", "mac_addr")
_MEMORY = ("inout", "params", "potential")


class _Terms:
    """Lemaire's model of one plan, linear in the counts: per forward, per event
    entering a module (by consumer), per output spike of a neuron (by leaf)."""

    def __init__(self) -> None:
        self.static = dict.fromkeys(_COUNTS + _MEMORY, 0.0)
        self.entering: list[tuple[int, dict]] = []  # (consumer id, per event)
        self.spikes: list[tuple[int, dict]] = []  # (leaf node, per output spike)


def _terms(plan: Any, cost: Cost) -> _Terms:
    """Built once per plan (shapes and capacities are static)."""
    found = getattr(plan, "_lemaire", None)
    if found is not None and found[0] is cost:
        return found[1]
    terms = _Terms()
    W = cost.width_bytes
    fifo = cost.per_byte(cost.fifo_elements * W)
    by_seq = {c.seq: c for c in plan.consumers if c.seq >= 0 and c.kind == "linear"}
    neurons = [s for s in plan.sources if s.rule.role == fb.NEURON]
    static = terms.static
    for call in plan.calls:
        c = by_seq.get(call.seqs[0]) if call.seqs else None
        spike_in = c is not None and c.category == df.SPIKES and c.values == fb.BINARY
        x_numel, out_numel = math.prod(call.in_shape), math.prod(call.out_shape)
        params = cost.per_byte(call.params * W)
        if call.linear:
            dense = out_numel * call.in_features
            synops = fanout = float(call.out_features)
        else:
            per_group = call.out_channels // call.groups
            dense = out_numel * call.weight_per_output
            synops = float(per_group * math.prod(
                math.ceil(k / s) for k, s in zip(call.kernel, call.stride)))
            fanout = float(per_group * math.prod(call.kernel))
        if spike_in:
            potential = cost.per_byte(out_numel * W // max(call.steps, 1))
            terms.entering.append((c.id, {
                "ac": synops, "synop": synops, "acc_addr": fanout,
                "mac_addr": 0.0 if call.linear else 2.0, "inout": W * fifo,
                "params": fanout * W * params, "potential": 2 * fanout * W * potential}))
        else:
            static["mac"] += dense
            extra = 0 if call.linear else call.out_channels * math.prod(call.kernel)
            static["acc_addr"] += x_numel + out_numel + extra
            read_in = x_numel if call.linear else dense
            static["inout"] += read_in * W * cost.per_byte(x_numel * W)
            static["params"] += dense * W * params
            if not neurons:
                static["inout"] += out_numel * W * cost.per_byte(out_numel * W)
        if call.bias:
            static["ac"] += out_numel
            static["params"] += out_numel * W * params
    leaf_of = {leaf.source: leaf for leaf in plan.leaves if leaf.kind == "source"}
    for s in neurons:
        numel = math.prod(s.shape)
        steps = max(s.steps if s.layout != fb.B else 1, 1)
        capacity = numel // steps * W
        static["potential"] += 2 * capacity * steps * cost.per_byte(capacity)
        module = s.module()
        if module is not None and s.rule.is_leaky(module):
            static["mac"] += numel
        leaf = leaf_of.get(s.index)
        if leaf is not None:
            terms.spikes.append((leaf.node, {"ac": 1.0, "inout": W * fifo}))
    plan._lemaire = (cost, terms)
    return terms


def estimate(plan: Any, host: dict, cost: Cost = COST) -> dict[str, Any]:
    """pJ for ``host["forwards"]`` forwards of ``plan`` (``Tally.host`` numbers)."""
    terms = _terms(plan, cost)
    forwards = host["forwards"]
    total = {k: v * forwards for k, v in terms.static.items()}
    for cid, per in terms.entering:
        events = host["entering"].get(cid, 0.0)
        for k, v in per.items():
            total[k] += v * events
    for node, per in terms.spikes:
        events = host["events"].get(node, 0.0)
        for k, v in per.items():
            total[k] += v * events
    counts = {k: total[k] for k in _COUNTS}
    ops = counts["ac"] * cost.e_add_pj + counts["mac"] * (cost.e_mul_pj + cost.e_add_pj)
    addressing = counts["acc_addr"] * cost.e_add_pj + \
        counts["mac_addr"] * (cost.e_mul_pj + cost.e_add_pj)
    memory = sum(total[k] for k in _MEMORY)
    return {"total_pj": ops + addressing + memory, "ops_pj": ops,
            "addressing_pj": addressing, "memory_pj": memory,
            "inout_pj": total["inout"], "params_pj": total["params"],
            "potential_pj": total["potential"], "counts": counts}


def add(a: dict | None, b: dict) -> dict:
    """Sum of two ``estimate`` results (plans of several input shapes)."""
    if a is None:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in b.items()}
    out = {k: a[k] + b[k] for k in a if not isinstance(a[k], dict)}
    out["counts"] = {k: a["counts"][k] + b["counts"][k] for k in a["counts"]}
    return out
