"""A user's script that hands a converted (monitored) SNN to spawn-started
workers: ``torch.multiprocessing.spawn`` and a ``DataLoader`` with
``multiprocessing_context="spawn"`` whose dataset runs the model. Each worker
runs the model on the main process' input and reports what it sees of itself.

Prints one ``REPORT {json}`` line per process (main first). The probe uses only
torch, psutil and threading: the script has no OpenTelemetry code.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import psutil
import sinabs
import torch
import torch.multiprocessing as tmp
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from models import INPUT_SHAPE, tiny_cnn  # noqa: E402

from opentelemetry_instrumentation_spikeformer.monitor.hooks import taps_on  # noqa: E402


def run(net, x) -> list[float]:
    """The network's last pre-activations (its output spikes are all 0 on one step)."""
    with torch.no_grad():
        net.reset_states()
        net(x)
        return net.spiking_model[:-1](x).flatten().tolist()


def report(where: str, net, x) -> dict:
    return {
        "where": where, "pid": os.getpid(), "output": run(net, x),
        "threads": sorted(t.name for t in threading.enumerate()),
        "listening": sorted(c.laddr.port for c in psutil.Process().net_connections("inet")
                            if c.status == psutil.CONN_LISTEN),
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + taps_on(m)
                     for m in net.modules()),
        "from_model_wrapped": type(sinabs.from_model).__name__ != "function",
    }


def spawned(index: int, net, x, queue) -> None:
    queue.put(report(f"mp.spawn worker {index}", net, x))


class Inputs(Dataset):
    def __init__(self, net, x):
        self.net, self.x = net, x

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> str:
        return json.dumps(report("DataLoader worker", self.net, self.x))


def main() -> None:
    torch.manual_seed(0)
    net = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    x = torch.rand(1, *INPUT_SHAPE) * 3
    print("REPORT", json.dumps(report("main", net, x)), flush=True)
    queue = tmp.get_context("spawn").SimpleQueue()
    workers = tmp.spawn(spawned, args=(net, x, queue), nprocs=1, join=False)
    loader = DataLoader(Inputs(net, x), batch_size=None, num_workers=1,
                        multiprocessing_context="spawn")  # its worker starts meanwhile
    for item in loader:
        print("REPORT", item, flush=True)
    workers.join()
    print("REPORT", json.dumps(queue.get()), flush=True)


if __name__ == "__main__":
    main()
