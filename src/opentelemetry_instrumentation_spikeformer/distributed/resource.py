"""``spikeformer_distributed``: a resource detector that identifies a torchrun rank.

Enable it with ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=spikeformer_distributed``
(or add it to a list such as ``host,process,spikeformer_distributed``); the SDK
runs only the detectors named there. With ``RANK`` and ``WORLD_SIZE`` set it
adds ``spikeformer.distributed.{rank,world_size,local_rank,node_rank,run_id}``
and, in the rank's own process, a ``service.instance.id`` that is a UUID v5 of
(job, rank) (``core.process.RankInfo.instance_id``).

Precedence (SDK ``_build_resource_detectors``): the SDK's random
``service_instance`` first, then the configured detectors (this one: its id
replaces the random one), then ``OTEL_RESOURCE_ATTRIBUTES`` /
``OTEL_SERVICE_NAME`` last, so a user's explicit ``service.instance.id`` wins.

Process dependent: after ``os.fork()`` the SDK re-runs this detector in the
child and merges it over the parent's resource. Helpers (forked or spawned
workers, ``core.process``) keep the rank attributes but not the rank's id:
they keep the SDK's fresh random one, so their series never mix with the rank's.
"""

from __future__ import annotations

import os
import threading

from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, Resource, ResourceDetector

from ..core import attributes as a
from ..core.process import is_helper_process, rank_info

_owner_pid: int | None = None  # the process that claimed the rank's identity
_lock = threading.Lock()


def _claims_identity() -> bool:
    """True in the first non-helper process that detects (the rank itself)."""
    global _owner_pid
    with _lock:
        if _owner_pid is None and not is_helper_process():
            _owner_pid = os.getpid()
        return _owner_pid == os.getpid()


class DistributedResourceDetector(ResourceDetector):
    """Rank attributes from torchrun's environment; empty outside a rank."""

    def is_process_dependent(self) -> bool:
        return True

    def detect(self) -> Resource:
        info = rank_info()
        if info is None:
            return Resource.get_empty()
        attrs: dict[str, int | str] = {a.DIST_RANK: info.rank,
                                       a.DIST_WORLD_SIZE: info.world_size}
        if info.local_rank is not None:
            attrs[a.DIST_LOCAL_RANK] = info.local_rank
        if info.node_rank is not None:
            attrs[a.DIST_NODE_RANK] = info.node_rank
        if info.run_id:
            attrs[a.DIST_RUN_ID] = info.run_id
        if info.instance_id and _claims_identity():
            attrs[SERVICE_INSTANCE_ID] = info.instance_id
        return Resource(attrs)
