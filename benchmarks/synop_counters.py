"""The monitor's counts next to the other counters, on the same models and inputs.

spikingjelly 2.0.0's op_counter (SynOpCounter, ACCounter / MACCounter,
SimpleEnergyProfiler, LemaireEnergyProfiler), sinabs' SNNAnalyzer and syops 0.0.5
(the counter the Spike-driven Transformer paper used) on spikingjelly's
Spikformer, Spike-driven Transformer and QKFormer (tiny configs, T=4, B=2, one
forward). docs/monitor.md explains every difference.

    .venv/bin/python benchmarks/synop_counters.py

syops needs ``pip install --no-deps syops==0.0.5 progress`` (scripts/bootstrap.sh
installs it); against spikingjelly 2.0 it only imports with placeholder classes
for the multi-step neurons spikingjelly 1.x had (set here).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def ours(model, x) -> dict:
    from opentelemetry_instrumentation_spikeformer.monitor import energy, monitor_model

    import dataflow_models as M

    monitor = monitor_model(model, "m")
    with __import__("torch").no_grad():
        model(x)
    M.reset(model)
    snap = monitor.read()
    monitor.detach()
    fp32 = energy.compute_only(snap, 4.6, 0.9)
    return {"snap": snap, "simple_pj": fp32["energy_compute_pj"]}


def spikingjelly_counters(model, x) -> dict:
    import torch
    from spikingjelly.activation_based import op_counter as oc

    import dataflow_models as M

    syn, ac, mac = oc.SynOpCounter(), oc.ACCounter(), oc.MACCounter()
    with torch.no_grad(), oc.DispatchCounterMode([syn, ac, mac]):
        model(x)
    M.reset(model)
    profiler = oc.SimpleEnergyProfiler()
    profiler.bind_model(model)
    with profiler, torch.no_grad():
        model(x)
    M.reset(model)
    simple = profiler.get_report()
    lemaire = oc.estimate_lemaire_energy(model, x, config=oc.LemaireEnergyConfig(strict=False))
    M.reset(model)
    return {"synop": syn.get_total(), "ac": ac.get_total(), "mac": mac.get_total(),
            "simple_pj": simple.energy_compute_pj, "lemaire_pj": lemaire.total_pj}


def snn_analyzer(model, x) -> dict:
    import copy

    import sinabs
    import torch

    import dataflow_models as M

    twin = copy.deepcopy(model)
    analyzer = sinabs.SNNAnalyzer(twin)
    try:
        with torch.no_grad():
            twin(x)
    except Exception as exc:  # report, do not hide
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    stats = analyzer.get_model_statistics(average=False)
    M.reset(twin)
    return {"synops": float(stats["synops"]), "spiking_neurons": int(stats["n_spiking_neurons"])}


def syops_counts(model, x) -> dict:
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import neuron

    import dataflow_models as M

    for name in ("MultiStepIFNode", "MultiStepLIFNode", "MultiStepParametricLIFNode"):
        if not hasattr(neuron, name):
            setattr(neuron, name, type(name, (nn.Module,), {}))
    try:
        from syops import get_model_complexity_info
    except ImportError as exc:
        return {"error": f"not installed ({exc})"}
    try:
        ops, _params = get_model_complexity_info(
            model, tuple(x.shape[1:]), dataloader=[(x, torch.zeros(x.shape[0]))],
            as_strings=False, print_per_layer_stat=False)
    except Exception as exc:  # report, do not hide
        M.reset(model)
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    M.reset(model)
    return {"total": ops[0], "acs": ops[1], "macs": ops[2]}


def main() -> None:
    import torch

    import dataflow_models as M

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    for name, build in M.TRANSFORMERS.items():
        model = build()
        x = M.image(1)
        batch = x.shape[0]
        mine = ours(model, x)
        snap = mine["snap"]
        sops, counts = snap["totals"]["synops_by_input"], snap["counts"]
        sj = spikingjelly_counters(model, x)
        an = snn_analyzer(model, x)
        sy = syops_counts(model, x)
        adds = counts["adds_by_input"]["spikes"]
        print(f"## {name} (T={M.T}, B={batch}, one forward; per image where marked)")
        print(f"monitor       SOPs spikes {sops['spikes']:.0f} (of which attention adds "
              f"{adds:.0f}), spike_sums {sops['spike_sums']:.0f}, graded {sops['graded']:.0f}; "
              f"encoding MACs {counts['encoding_macs']:.0f} (every step: "
              f"{counts['encoding_macs_every_step']:.0f}); ANN MACs/image {counts['ann_macs']:.0f}")
        print(f"              energy/image (uJ): papers {snap['energy']['snn_mj'] * 1e3:.3f} "
              f"(ANN {snap['energy']['ann_mj'] * 1e3:.3f}, ratio {snap['energy']['ratio']:.1f}); "
              f"memory-aware {snap['energy_memory']['snn_mj'] * 1e3:.2f}; "
              f"SimpleEnergyProfiler rules {mine['simple_pj'] / batch * 1e-6:.3f}")
        print(f"spikingjelly  SynOpCounter {sj['synop']} (= monitor spikes - adds: "
              f"{sj['synop'] == sops['spikes'] - adds}); ACCounter {sj['ac']}, MACCounter "
              f"{sj['mac']}; SimpleEnergyProfiler {sj['simple_pj'] / batch * 1e-6:.3f} uJ/image; "
              f"Lemaire {sj['lemaire_pj'] / batch * 1e-6:.2f} uJ/image "
              f"(monitor {snap['energy_memory']['total_pj'] / batch * 1e-6:.2f})")
        if "error" in an:
            print(f"SNNAnalyzer   {an['error']}")
        else:
            print(f"SNNAnalyzer   synops/image {an['synops']:.0f}, spiking neurons it knows "
                  f"{an['spiking_neurons']}")
        if "error" in sy:
            print(f"syops 0.0.5   {sy['error']}")
        else:
            print(f"syops 0.0.5   ACs {sy['acs']:.0f}, MACs {sy['macs']:.0f} (per image; the "
                  f"monitor per image: SOPs {sum(sops.values()) / batch:.0f}, encoding MACs "
                  f"{counts['encoding_macs'] / batch:.0f})")
        print()


if __name__ == "__main__":
    main()
