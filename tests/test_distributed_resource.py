"""Which process is a rank or a helper (core/process.py), and the
``spikeformer_distributed`` resource detector against the real SDK."""

from __future__ import annotations

import json
import multiprocessing
import os
import uuid

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from opentelemetry_instrumentation_spikeformer.core import attributes as a
from opentelemetry_instrumentation_spikeformer.core import process
from opentelemetry_instrumentation_spikeformer.distributed import resource as detector

# What torchrun --standalone --nproc_per_node=2 gives rank 1.
TORCHRUN = {
    "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
    "GROUP_RANK": "0", "GROUP_WORLD_SIZE": "1", "MASTER_ADDR": "localhost", "MASTER_PORT": "42825",
    "TORCHELASTIC_RUN_ID": "7fb550ca-5893-4936-a641-a4efa9ec1a89", "TORCHELASTIC_RESTART_COUNT": "0",
}
SPAWN_ARGV = ["python", "-B", "-c", "from multiprocessing.spawn import spawn_main; "
              "spawn_main(tracker_fd=4, pipe_handle=6)", "--multiprocessing-fork"]
TRACKER_ARGV = ["python", "-B", "-c", "from multiprocessing.resource_tracker import main;main(3)"]


@pytest.fixture
def rank_env(monkeypatch):
    """Set a torchrun environment (and nothing else of OTEL_*); returns a setter."""
    for key in list(os.environ):
        if key.startswith(("OTEL_", "RANK", "WORLD_SIZE", "LOCAL_", "TORCHELASTIC", "MASTER_",
                           "GROUP_")):
            monkeypatch.delenv(key)

    def apply(detect: bool = True, **env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        if detect:
            monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "spikeformer_distributed")

    return apply


def test_rank_attributes_and_a_stable_uuid5_instance_id(rank_env):
    rank_env(**TORCHRUN)
    first, again = Resource.create().attributes, Resource.create().attributes
    assert first[a.DIST_RANK] == 1 and first[a.DIST_WORLD_SIZE] == 2
    assert first[a.DIST_LOCAL_RANK] == 1 and first[a.DIST_NODE_RANK] == 0
    assert first[a.DIST_RUN_ID] == TORCHRUN["TORCHELASTIC_RUN_ID"]
    instance = uuid.UUID(first["service.instance.id"])
    assert instance.version == 5 and first["service.instance.id"] == again["service.instance.id"]
    assert str(instance) == str(uuid.uuid5(process.SERVICE_INSTANCE_NAMESPACE,
                                           f"torch.distributed/run:{TORCHRUN['TORCHELASTIC_RUN_ID']}/1"))
    rank_env(RANK="0", LOCAL_RANK="0")
    assert Resource.create().attributes["service.instance.id"] != str(instance)


def test_without_the_detector_variable_nothing_is_added(rank_env):
    rank_env(detect=False, **TORCHRUN)
    attrs = Resource.create().attributes
    assert not any(key.startswith("spikeformer.") for key in attrs)
    assert uuid.UUID(attrs["service.instance.id"]).version == 4  # the SDK's random id


def test_outside_a_rank_the_detector_adds_nothing(rank_env):
    rank_env()
    attrs = Resource.create().attributes
    assert not any(key.startswith("spikeformer.") for key in attrs)
    assert uuid.UUID(attrs["service.instance.id"]).version == 4


def test_the_users_resource_attributes_win(rank_env):
    rank_env(OTEL_RESOURCE_ATTRIBUTES="service.instance.id=mine,spikeformer.distributed.rank=7",
             **TORCHRUN)
    attrs = Resource.create().attributes
    assert attrs["service.instance.id"] == "mine" and attrs[a.DIST_RANK] == "7"


def test_static_rendezvous_falls_back_to_the_store_address():
    info = process.rank_info({**TORCHRUN, "TORCHELASTIC_RUN_ID": "none"})
    assert info.run_id is None and info.job_key == "store:localhost:42825"
    other_job = process.rank_info({**TORCHRUN, "TORCHELASTIC_RUN_ID": "none",
                                   "MASTER_PORT": "29501"})
    assert other_job.instance_id != info.instance_id
    assert process.rank_info({"RANK": "0", "WORLD_SIZE": "1"}).instance_id is None


@pytest.mark.parametrize("env", [{"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"},
                                 {"RANK": "-1", "WORLD_SIZE": "2"}, {"RANK": "0"}, {}])
def test_bad_or_partial_variables_are_not_a_rank(env):
    assert process.rank_info(env) is None
    assert process.local_rank(env) == 0


def test_local_rank():
    assert process.local_rank(TORCHRUN) == 1
    assert process.local_rank({"RANK": "3", "WORLD_SIZE": "4"}) == 0  # no LOCAL_RANK


def test_a_fork_child_keeps_the_rank_attributes_but_not_the_ranks_id(rank_env):
    """The SDK re-runs process-dependent detectors in a fork child."""
    rank_env(**TORCHRUN)
    provider = MeterProvider(resource=Resource.create())
    parent = dict(provider._sdk_config.resource.attributes)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.write(write, json.dumps(dict(provider._sdk_config.resource.attributes)).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child = json.loads(os.read(read, 65536))
    provider.shutdown()
    assert parent["service.instance.id"] == process.rank_info(TORCHRUN).instance_id
    assert child[a.DIST_RANK] == 1
    assert child["service.instance.id"] != parent["service.instance.id"]
    assert uuid.UUID(child["service.instance.id"]).version == 4


def test_command_lines_of_helpers():
    assert process.started_by_multiprocessing(SPAWN_ARGV)
    assert process.started_by_multiprocessing(TRACKER_ARGV)
    assert not process.started_by_multiprocessing(["python", "train.py"])
    assert process.is_torchrun_agent(["/venv/bin/python3.11", "/venv/bin/torchrun", "--standalone"])
    assert process.is_torchrun_agent(["python", "-m", "torch.distributed.run", "x.py"])
    assert not process.is_torchrun_agent(["python", "-u", "train.py", "torchrun"])


def _child_kind(queue) -> None:
    queue.put(process.helper_kind())


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_real_multiprocessing_children_are_helpers(method):
    assert process.helper_kind() is None  # this test process
    ctx = multiprocessing.get_context(method)
    queue = ctx.SimpleQueue()
    child = ctx.Process(target=_child_kind, args=(queue,))
    child.start()
    child.join(60)
    assert "multiprocessing child" in queue.get()


def test_the_detector_is_the_installed_entry_point():
    from importlib.metadata import entry_points

    (ep,) = entry_points(group="opentelemetry_resource_detector", name="spikeformer_distributed")
    assert ep.load() is detector.DistributedResourceDetector
