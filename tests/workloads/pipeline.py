"""A real conversion/compile pipeline for the collector-stack tests.

Run it under the launcher, unchanged, as a user would::

    opentelemetry-instrument python tests/workloads/pipeline.py --done-file /tmp/x

It converts a small CNN with sinabs and spikingjelly, exports it to NIR (the
compile step available without hardware; the Speck ``make_config`` compile
runs only when the real samna is installed), forces one failed conversion
and one failed compile so that error series exist, and runs spiking inference;
with ``--spinnaker``, round 1 also maps a PyNN network onto a virtual SpiNNaker
board (the compile-time mapping gauges). Then it prints ``ROUND 1 DONE``. With
``--rounds N`` it runs again each time the file ``--gate`` + ``.<round>``
appears (so a scraper sees counters move). Then it
prints ``READY`` and waits until ``--done-file`` exists. No wait lasts longer
than ``--timeout`` seconds in all. With ``--wait none`` it exits at once, which
flushes the SDK's batch processors and periodic metric reader.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from opentelemetry_instrumentation_spikeformer.devices.samna_probe import real_samna_installed


def build_cnn():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(),
        nn.Conv2d(4, 8, 3, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10, bias=False), nn.ReLU(),
    )


def expect_failure(what: str, call) -> None:
    try:
        call()
    except Exception as exc:  # the failure is the point: it must be recorded as an error
        print(f"expected failure in {what}: {type(exc).__name__}", flush=True)
    else:
        raise SystemExit(f"{what} was expected to fail but succeeded")


def run_pipeline() -> None:
    import sinabs
    import torch
    from spikingjelly.activation_based import ann2snn

    torch.manual_seed(0)
    sample = torch.rand(1, 1, 8, 8)
    ann = build_cnn().eval()

    # Conversion 1: sinabs (ANN -> IAF network).
    snn = sinabs.from_model(ann, input_shape=(1, 8, 8), batch_size=1).spiking_model

    # Conversion 2: spikingjelly rate coding, calibrated on a tiny loader.
    loader = [(torch.rand(2, 1, 8, 8), torch.zeros(2)) for _ in range(2)]
    sj_snn = ann2snn.Converter(ann2snn.RateCodingRecipe(loader)).convert(build_cnn().eval())

    # Compile step: NIR export (and the Speck config when real samna exists).
    sinabs.to_nir(snn, sample)
    if real_samna_installed():
        from sinabs.backend.dynapcnn import DynapcnnNetwork

        DynapcnnNetwork(snn, input_shape=(1, 8, 8), discretize=True).make_config(
            device="speck2fdevkit:0")

    # One failed conversion and one failed compile, so the error series exist.
    expect_failure("conversion", lambda: sinabs.from_model(
        ann, input_shape=(1, 8, 8), batch_size=1, spike_layer_class="no-such-layer"))
    expect_failure("compile", lambda: sinabs.to_nir(snn, torch.rand(1, 3, 5)))

    # Spiking inference: several timesteps through both converted networks.
    with torch.no_grad():
        for _ in range(4):
            snn(sample)
            sj_snn(sample)


def wait_for_file(path: str | None, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if path and os.path.exists(path):
            return True
        time.sleep(0.1)
    print("workload: timeout reached", flush=True)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", choices=("file", "none"), default="file")
    parser.add_argument("--done-file")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--gate", help="round k > 1 starts when <gate>.<k> exists")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--spinnaker", action="store_true",
                        help="round 1 also maps onto a virtual SpiNNaker board (extra [spinnaker])")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    for round_no in range(1, args.rounds + 1):
        if round_no > 1 and not wait_for_file(f"{args.gate}.{round_no}", deadline):
            return 1
        run_pipeline()
        if args.spinnaker and round_no == 1:
            from opentelemetry_instrumentation_spikeformer.tools.virtual_spinnaker import (
                map_small_network,
            )

            print(f"mapped on a virtual SpiNNaker board: {map_small_network()}", flush=True)
        print(f"ROUND {round_no} DONE", flush=True)
    print("READY", flush=True)
    if args.wait == "file":
        wait_for_file(args.done_file, deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
