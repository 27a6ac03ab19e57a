"""Compile-time resources of a chip mapping, shared by the toolchain extensions
(spinnaker, nengo_loihi, akida): the metric specs and the snapshot they publish.

All are observable gauges over the latest mapping of each target
(``core.snapshots``): a smaller mapping after a larger one leaves no stale
per-chip series behind. Per-chip utilisation has its own name,
``neuromorphic.compile.core_utilization``, not the devices' runtime
``neuromorphic.core.utilization``: it is what the placement plans, not what a
board measures, and the SDK would drop the callbacks of a second instrument of
the same name on the same meter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.semconv._incubating.attributes.hw_attributes import HW_ID

from ..core.attributes import M_ROUTING_TABLE, M_STATE, M_STATISTIC, M_TARGET_HARDWARE
from ..core.metrics import MetricSpec
from ..core.snapshots import Snapshot

# Per-chip series of one mapping (the fullest chips): a million-core machine
# must not become a million series.
MAX_CHIP_SERIES = 64
USED, AVAILABLE = "used", "available"

CHIPS = MetricSpec(
    "neuromorphic.compile.chips", "observable_gauge", "{chip}", "neuromorphic_compile_chips",
    (M_TARGET_HARDWARE, M_STATE),
    "Chips the latest mapping places on (state=used) and the target has (state=available)",
)
CORES = MetricSpec(
    "neuromorphic.compile.cores", "observable_gauge", "{core}", "neuromorphic_compile_cores",
    (M_TARGET_HARDWARE, M_STATE),
    "Cores the latest mapping uses and the target has (Akida: neural processors)",
)
CORE_UTILIZATION = MetricSpec(
    "neuromorphic.compile.core_utilization", "observable_gauge", "1",
    "neuromorphic_compile_core_utilization", (M_TARGET_HARDWARE, HW_ID),
    "Per chip of the latest mapping: cores placed / cores usable, 0..1 (used chips only)",
)
ROUTING_ENTRIES = MetricSpec(
    "neuromorphic.compile.routing_entries", "observable_gauge", "{entry}",
    "neuromorphic_compile_routing_entries", (M_TARGET_HARDWARE, M_ROUTING_TABLE, M_STATISTIC),
    "Multicast routing entries of the latest mapping before and after compression: "
    "all chips (total) and the fullest chip (max_per_chip)",
)
BLOCKS = MetricSpec(
    "neuromorphic.compile.blocks", "observable_gauge", "{block}", "neuromorphic_compile_blocks",
    (M_TARGET_HARDWARE,), "Loihi blocks of the latest build, after splitting (one core each)",
)
SYNAPSE_MEMORY = MetricSpec(
    "neuromorphic.compile.synapse_memory", "observable_gauge", "By",
    "neuromorphic_compile_synapse_memory_bytes", (M_TARGET_HARDWARE, M_STATE),
    "Synapse memory the latest mapping uses, and what its cores hold (state=available)",
)
PROGRAM_SIZE = MetricSpec(
    "neuromorphic.compile.program_size", "observable_gauge", "By",
    "neuromorphic_compile_program_size_bytes", (M_TARGET_HARDWARE,),
    "Size of the hardware program(s) the latest mapping produced",
)


@dataclass
class Resources:
    """What one mapping uses; ``None`` fields are not reported."""

    target: str
    chips: tuple[int, int | None] | None = None  # used, available
    cores: tuple[int, int | None] | None = None
    utilization: dict[str, float] = field(default_factory=dict)  # chip id -> 0..1
    routing: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> total, max/chip
    blocks: int | None = None
    synapse_memory: tuple[int, int | None] | None = None  # bytes used, available
    program_size: int | None = None

    def snapshot(self) -> Snapshot:
        base = {M_TARGET_HARDWARE: self.target}
        points: dict[MetricSpec, list[tuple[float, dict[str, Any]]]] = {}

        def add(spec: MetricSpec, value: float | None, **attrs: str) -> None:
            if value is not None:
                points.setdefault(spec, []).append((value, {**base, **attrs}))

        for spec, pair in ((CHIPS, self.chips), (CORES, self.cores),
                           (SYNAPSE_MEMORY, self.synapse_memory)):
            if pair is not None:
                add(spec, pair[0], **{M_STATE: USED})
                add(spec, pair[1], **{M_STATE: AVAILABLE})
        fullest = sorted(self.utilization.items(), key=lambda kv: (-kv[1], kv[0]))
        for chip, value in fullest[:MAX_CHIP_SERIES]:
            add(CORE_UTILIZATION, value, **{HW_ID: chip})
        for table, (total, most) in self.routing.items():
            add(ROUTING_ENTRIES, total, **{M_ROUTING_TABLE: table, M_STATISTIC: "total"})
            add(ROUTING_ENTRIES, most, **{M_ROUTING_TABLE: table, M_STATISTIC: "max_per_chip"})
        add(BLOCKS, self.blocks)
        add(PROGRAM_SIZE, self.program_size)
        return points


def publish(telemetry: Any, resources: Resources, part: str = "") -> None:
    """Make ``resources`` the target's latest mapping in the compile gauges; a
    toolchain that maps in several calls (build, then allocation) names the
    part each one replaces."""
    group = f"{resources.target}.{part}" if part else resources.target
    telemetry.publish(group, resources.snapshot())
