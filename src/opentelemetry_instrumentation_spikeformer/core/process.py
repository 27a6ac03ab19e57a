"""Who this process is in a multi-process job, read from its environment and
command line only: no torch, no SDK, nothing imported.

A *rank* is a process torchrun (torch.distributed.run) started: it has
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``
(node rank), ``MASTER_ADDR``/``MASTER_PORT`` and ``TORCHELASTIC_RUN_ID`` (a
uuid4 with ``--standalone`` or a single-node c10d rendezvous; the placeholder
``none`` with a static multi-node rendezvous unless ``--rdzv-id`` is given).

A *helper* works for another process: spawn/forkserver children
(``DataLoader(multiprocessing_context="spawn")`` workers,
``torch.multiprocessing.spawn`` workers), the forkserver, multiprocessing's
resource tracker, DataLoader workers, and the torchrun agent when the launcher
wraps torchrun. Every one of them inherits ``PYTHONPATH`` and so runs the whole
auto-instrumentation at start-up; a helper starts no device poller, no health
server and no Prometheus port, and does not claim the rank's identity.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from typing import Mapping, Sequence

# semantic-conventions (service.instance.id): an id built from an inherent
# unique id SHOULD be a UUID v5 in this namespace.
SERVICE_INSTANCE_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")
_TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")


def _int(env: Mapping[str, str], name: str) -> int | None:
    try:
        value = int(env.get(name, ""))
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True)
class RankInfo:
    rank: int
    world_size: int
    local_rank: int | None
    local_world_size: int | None
    node_rank: int | None
    run_id: str | None  # None when absent or torchrun's placeholder "none"
    job_key: str | None  # (job_key, rank) is unique among running jobs

    @property
    def instance_id(self) -> str | None:
        """A stable ``service.instance.id`` for this rank of this job: the same
        after an elastic restart, different for every rank; it reveals no host
        name or address (uuid5). None when nothing identifies the job."""
        if self.job_key is None:
            return None
        return str(uuid.uuid5(SERVICE_INSTANCE_NAMESPACE,
                              f"torch.distributed/{self.job_key}/{self.rank}"))


def rank_info(env: Mapping[str, str] | None = None) -> RankInfo | None:
    """This process' rank from torchrun's variables, or None if it is not a rank."""
    env = os.environ if env is None else env
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    if rank is None or world is None or world < 1 or rank >= world:
        return None
    run_id = env.get("TORCHELASTIC_RUN_ID") or None
    if run_id == "none":
        run_id = None
    addr, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    # A run id names one job; without one (static rendezvous, launchers that
    # export RANK themselves) the rendezvous store address is unique among
    # running jobs.
    job_key = f"run:{run_id}" if run_id else (f"store:{addr}:{port}" if addr and port else None)
    return RankInfo(rank, world, _int(env, "LOCAL_RANK"), _int(env, "LOCAL_WORLD_SIZE"),
                    _int(env, "GROUP_RANK"), run_id, job_key)


def local_rank(env: Mapping[str, str] | None = None) -> int:
    """``LOCAL_RANK`` of a torchrun rank, else 0 (a process of its own)."""
    info = rank_info(env)
    return (info.local_rank or 0) if info is not None else 0


def started_by_multiprocessing(argv: Sequence[str] | None = None) -> bool:
    """A fresh interpreter multiprocessing started: spawn/forkserver children,
    the forkserver, the resource tracker. Works at interpreter start-up (the
    launcher's sitecustomize), when ``multiprocessing.parent_process()`` is
    still None; the command line is then ``python -c 'from multiprocessing.spawn
    import spawn_main; ...' --multiprocessing-fork``."""
    argv = sys.orig_argv if argv is None else argv
    return "--multiprocessing-fork" in argv or any(
        str(arg).startswith("from multiprocessing.") for arg in argv)


def is_torchrun_agent(argv: Sequence[str] | None = None) -> bool:
    """The torchrun agent itself: ``opentelemetry-instrument torchrun ...`` runs
    ``python .../bin/torchrun ...``; also ``python -m torch.distributed.run``."""
    argv = list(sys.orig_argv if argv is None else argv)
    if any(os.path.basename(str(arg)) == "torchrun" for arg in argv[:2]):
        return True
    return any(argv[i] == "-m" and argv[i + 1] in _TORCHRUN_MODULES
               for i in range(min(len(argv) - 1, 3)))


def helper_kind() -> str | None:
    """Why this process is a helper (see the module doc), or None."""
    if started_by_multiprocessing():
        return "a multiprocessing child (spawn/forkserver worker, resource tracker)"
    if is_torchrun_agent():
        return "the torchrun agent (run `torchrun ... opentelemetry-instrument python script.py`)"
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.parent_process() is not None:
        return "a multiprocessing child"
    torch_data = sys.modules.get("torch.utils.data")
    info = getattr(torch_data, "get_worker_info", None)
    if info is not None and info() is not None:
        return "a DataLoader worker"
    return None


def is_helper_process() -> bool:
    return helper_kind() is not None
