"""A user's torchrun job with no OpenTelemetry code: gloo on CPU, each rank
converts the tiny CNN with sinabs and runs a few forwards, then all ranks
all-reduce a number.

    torchrun --standalone --nproc_per_node=2 \
        $(which opentelemetry-instrument) $(which python) ddp_job.py [--hold-until PATH]

Prints ``ready rank=R world=W allreduce=A`` when its work is done; with
``--hold-until`` it then waits until PATH exists (at most 120 s), so that a
test can scrape the ranks while they are alive.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import sinabs
import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from models import INPUT_SHAPE, tiny_cnn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forwards", type=int, default=3)
    parser.add_argument("--hold-until", default=None)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(rank)  # different inputs, different spike counts per rank
    net = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    with torch.no_grad():
        for _ in range(args.forwards):
            net.reset_states()
            net(torch.rand(1, *INPUT_SHAPE) * 3)
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    print(f"ready rank={rank} world={world} allreduce={total.item():.0f}", flush=True)
    if args.hold_until:
        deadline = time.monotonic() + 120
        while not os.path.exists(args.hold_until) and time.monotonic() < deadline:
            time.sleep(0.1)
    dist.destroy_process_group()
    return net


if __name__ == "__main__":
    model = main()  # kept until exit: the SDK's final export reads its monitor
