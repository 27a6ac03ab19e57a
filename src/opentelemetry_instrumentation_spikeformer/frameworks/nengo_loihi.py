"""nengo-loihi (Intel Loihi): the build of a nengo network into Loihi blocks,
and their allocation onto chips and cores.

    spikeformer.compile nengo_loihi        Simulator(net, target=...)
      spikeformer.stage split              blocks split to fit a core
      spikeformer.stage discretize         weights and parameters to chip precision
      spikeformer.stage validate
      spikeformer.stage emulator build     target="sim"
    spikeformer.compile nengo_loihi        an allocator called alone (target="sim"
      spikeformer.stage allocate           places nothing; target="loihi" does it inside)

``split_model``, ``discretize_model`` and ``validate_model`` are patched where
``nengo_loihi.builder.network`` imported them by name. Every allocator puts
each block on a new core, so the build's blocks are the cores a board needs.
"""

from __future__ import annotations

from typing import Any

from ..core import attributes as a
from ..core.targets import STAGE, RowHooks, Target
from . import mapping
from .base import Framework

NAME, HARDWARE = "nengo_loihi", "loihi"
CORES_PER_CHIP = 128  # Loihi 1; nengo_loihi's allocators refuse more
NETWORK = "nengo_loihi.builder.network"


def _synapse_bits(blocks: Any) -> int:
    return sum(synapse.bits() for block in blocks for synapse in block.synapses)


def model_resources(model: Any) -> tuple[mapping.Resources, dict[str, Any]]:
    """The built model: blocks and synapse memory (each block gets one core)."""
    from nengo_loihi.block import MAX_SYNAPSE_BITS

    blocks = list(model.blocks)
    bits = _synapse_bits(blocks)
    resources = mapping.Resources(HARDWARE, blocks=len(blocks),
                                  synapse_memory=(bits // 8, len(blocks) * MAX_SYNAPSE_BITS // 8))
    details = {
        "blocks": len(blocks),
        "compartments": sum(b.compartment.n_compartments for b in blocks),
        "synapse_bits": bits,
        "in_axons": sum(s.n_axons for b in blocks for s in b.synapses),
        "out_axons": sum(ax.axon_slots() for b in blocks for ax in b.axons),
        "inputs": len(model.inputs),
        "probes": len(model.probes),
    }
    return resources, details


def board_resources(board: Any, n_chips: int) -> tuple[mapping.Resources, dict[str, Any]]:
    """An allocator's board: chips and cores used of those asked for (the build
    already reported blocks and synapse memory: one block per core)."""
    from nengo_loihi.block import MAX_SYNAPSE_BITS

    per_chip = [len(chip.cores) for chip in board.chips]
    cores = sum(per_chip)
    used_bits = _synapse_bits(block for chip in board.chips for core in chip.cores
                              for block in core.blocks)
    resources = mapping.Resources(
        HARDWARE, chips=(board.n_chips, n_chips), cores=(cores, n_chips * CORES_PER_CHIP),
        utilization={str(i): n / CORES_PER_CHIP for i, n in enumerate(per_chip)})
    details = {
        "chips_used": board.n_chips, "chips_available": n_chips,
        "cores_used": cores, "cores_available": n_chips * CORES_PER_CHIP,
        "chip_core_utilization_max": max(per_chip, default=0) / CORES_PER_CHIP,
        "synapse_bytes_used": used_bits // 8,
        "synapse_bytes_available": cores * MAX_SYNAPSE_BITS // 8,
    }
    return resources, details


def _describe(call: Any, resources: mapping.Resources, details: dict[str, Any],
              part: str | None) -> None:
    """Details on the span; the gauges' ``part`` (build, allocation) unless None."""
    if call.span.is_recording():
        call.span.set_attributes({f"loihi.{k}": v for k, v in details.items()})
    if part is not None:
        mapping.publish(call.telemetry, resources, part)


class _SimulatorHooks(RowHooks):
    def on_end(self, call: Any, result: Any, error: BaseException | None) -> None:
        simulator = call.instance
        if error is not None or simulator is None:
            return
        if call.span.is_recording():
            call.span.set_attribute("loihi.target", str(getattr(simulator, "target", "")))
        _describe(call, *model_resources(simulator.model), part="build")


class _SplitHooks(RowHooks):
    def on_end(self, call: Any, result: Any, error: BaseException | None) -> None:
        if isinstance(result, dict) and call.span.is_recording():  # {old block: {new: idxs}}
            call.span.set_attribute("loihi.blocks_before_split", len(result))
            call.span.set_attribute("loihi.blocks_after_split",
                                    sum(len(new) for new in result.values()))


class _AllocateHooks(RowHooks):
    def on_end(self, call: Any, result: Any, error: BaseException | None) -> None:
        if call.span.is_recording():
            call.span.set_attribute("loihi.allocator", type(call.instance).__name__)
        n_chips = call.bound.get("n_chips")
        if error is None and result is not None and isinstance(n_chips, int):
            # the compile span opened around a lone allocation gets the details too;
            # the gauges come once, from the allocate step
            _describe(call, *board_resources(result, n_chips),
                      part="allocation" if call.target.role == STAGE else None)


def _step(module: str, qualname: str, step: str, **kw: Any) -> Target:
    return Target(module, qualname, framework=NAME, role=STAGE, step=step, **kw)


FRAMEWORK = Framework(
    name=NAME,
    packages=("nengo_loihi",),
    tested_with="nengo-loihi 1.1.0 / nengo 3.2.0 (numpy < 2)",
    targets=(
        Target("nengo_loihi.simulator", "Simulator.__init__", a.COMPILATION, NAME,
               model="network", hardware_value=HARDWARE, hooks=_SimulatorHooks()),
        _step(NETWORK, "split_model", "split", hooks=_SplitHooks()),
        _step(NETWORK, "discretize_model", "discretize"),
        _step(NETWORK, "validate_model", "validate"),
        _step("nengo_loihi.emulator.interface", "EmulatorInterface.__init__", "emulator build"),
        # Greedy, GreedyInterchip, RoundRobin, ... each define their own __call__
        _step("nengo_loihi.hardware.allocators", "Allocator.__call__", "allocate",
              subclasses=True, standalone=a.COMPILATION, model="model",
              hardware_value=HARDWARE, hooks=_AllocateHooks()),
        _step("nengo_loihi.hardware.validate", "validate_board", "validate board",
              aliases=("nengo_loihi.hardware.interface",)),
    ),
    hardware=(HARDWARE, "loihi2"),
    metrics=(mapping.CHIPS, mapping.CORES, mapping.CORE_UTILIZATION, mapping.BLOCKS,
             mapping.SYNAPSE_MEMORY),
)
