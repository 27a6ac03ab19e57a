"""What each process of a multi-process job starts and reports, in-process:
helpers start no poller and no health server, a torchrun rank other than
LOCAL_RANK 0 leaves machine-wide adapters to LOCAL_RANK 0 and serves /health on
its own port, only the ranks of OTEL_PYTHON_SPIKEFORMER_MONITOR_RANKS attach
the per-layer monitor, a rank without the detector gets one hint, and fork
children report nothing their parent's monitors or poller counted.
The same through real launchers: test_multiprocess_spawn.py,
test_multiprocess_torchrun.py."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import urllib.request

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from collector_support import free_port_run
from device_helpers import Steady
from models import INPUT_SHAPE, tiny_cnn
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
from opentelemetry_instrumentation_spikeformer.core import attributes as a
from opentelemetry_instrumentation_spikeformer.devices import registry
from opentelemetry_instrumentation_spikeformer.distributed import advice

SPAWN_ARGV = ["python", "-c", "from multiprocessing.spawn import spawn_main", "--multiprocessing-fork"]


@pytest.fixture
def rank(monkeypatch):
    """Make this test process torchrun's rank ``global_rank`` (LOCAL_RANK ``local``)."""
    def apply(global_rank: int, local: int, world: int = 2) -> None:
        monkeypatch.setenv("RANK", str(global_rank))
        monkeypatch.setenv("LOCAL_RANK", str(local))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(world))

    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    return apply


def ours() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("spikeformer-")}


# -- devices instrumentor ---------------------------------------------------------
def test_a_helper_starts_no_poller_and_no_health_server(instrument_devices, monkeypatch, otel):
    monkeypatch.setattr(sys, "orig_argv", SPAWN_ARGV)
    before = ours()
    instrumentor = instrument_devices(device_adapters="host", health_server=True, health_port=0)
    assert instrumentor.poller is None and instrumentor._server is None
    assert ours() == before
    assert otel.points("hw.status") == []


class OwnDevice(Steady):
    """A device only this process uses (per_host False), e.g. its own board."""

    name = "own"
    per_host = False


@pytest.fixture
def with_own_adapter(monkeypatch):
    found = {**registry.factories(), "own": OwnDevice}
    monkeypatch.setattr(registry, "factories", lambda: found)


@pytest.mark.parametrize("local, polled", [(0, ["host", "own"]), (1, ["own"])])
def test_machine_wide_adapters_are_polled_by_local_rank_0_only(
        instrument_devices, rank, with_own_adapter, local, polled):
    rank(global_rank=2 + local, local=local, world=4)
    instrumentor = instrument_devices(device_adapters="host,own", device_poll_interval=0.05)
    assert sorted(view.name for view in instrumentor.poller.views()) == polled


def _get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def test_the_health_server_listens_on_health_port_plus_local_rank(instrument_devices, rank):
    base = free_port_run(2)
    rank(global_rank=1, local=1)
    instrumentor = instrument_devices(health_server=True, health_port=base,
                                      device_adapters="none")
    assert instrumentor._server.port == base + 1
    code, body = _get(f"http://127.0.0.1:{base + 1}/health")
    assert code == 200 and body["status"] in ("healthy", "degraded")


# -- spike monitor ------------------------------------------------------------------
@pytest.mark.parametrize("this_rank, monitored", [(0, True), (1, False)])
def test_only_the_selected_ranks_attach_the_monitor(instrument, otel, rank, this_rank, monitored):
    import sinabs

    rank(global_rank=this_rank, local=this_rank)
    instrument(monitor_ranks="0")
    net = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    _forwards(net)
    assert bool(otel.points("neural.spikes")) is monitored
    assert otel.value("spikeformer.conversions") == 1  # conversions count on every rank


# -- one hint for a rank without the detector ---------------------------------------------
@pytest.mark.parametrize("resource, hinted", [
    (Resource.create({}), True), (Resource.create({a.DIST_RANK: 1}), False)])
def test_a_rank_without_rank_attributes_gets_one_hint(
        instrument, rank, monkeypatch, caplog, resource, hinted):
    monkeypatch.setattr(advice, "_given", set())
    rank(global_rank=1, local=1)
    instrumentor = SpikeformerInstrumentor()
    with caplog.at_level(logging.INFO, "opentelemetry_instrumentation_spikeformer"):
        for _ in range(2):
            instrumentor.instrument(tracer_provider=TracerProvider(resource=resource))
            instrumentor.uninstrument()
    hints = [r.getMessage() for r in caplog.records
             if "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=spikeformer_distributed" in r.getMessage()]
    assert len(hints) == (1 if hinted else 0), hints


# -- fork children --------------------------------------------------------------------
def in_fork_child(work) -> dict:
    """Run ``work()`` in a fork child of this process; its JSON result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        return json.loads(pipe.read())


def _spikes(otel) -> float:
    return sum(p.value for p in otel.points("neural.spikes"))


def _forwards(net, n: int = 3) -> None:
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(n):
            net.reset_states()
            net(torch.rand(1, *INPUT_SHAPE, generator=gen) * 3)


def test_a_fork_child_reports_none_of_its_parents_monitors(instrument, otel):
    import sinabs

    instrument()
    net = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
    _forwards(net)
    counted = _spikes(otel)
    assert counted > 0
    _forwards(net)  # counted by the hooks, not yet collected when the child forks

    def child() -> dict:
        import torch

        torch.set_num_threads(1)  # as a DataLoader worker does: OpenMP's pool stayed behind
        inherited = {m: len(otel.points(m)) for m in (
            "neural.spikes", "neural.synops", "spikeformer.energy.estimate")}
        own = sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
        _forwards(own)
        return {"inherited": inherited, "own": _spikes(otel)}

    result = in_fork_child(child)
    assert result["inherited"] == dict.fromkeys(result["inherited"], 0)
    assert result["own"] > 0  # a model monitored in the child reports as usual
    assert _spikes(otel) > counted  # the parent goes on with its own counts


def test_a_fork_child_reports_none_of_its_parents_device_readings(instrument_devices, otel):
    from device_helpers import wait_for

    instrument_devices(device_adapters="host", device_poll_interval=0.05)
    assert wait_for(lambda: otel.points("hw.status"))

    def child() -> dict:
        return {m: len(otel.points(m)) for m in ("hw.status", "system.memory.utilization")}

    assert in_fork_child(child) == {"hw.status": 0, "system.memory.utilization": 0}
    assert otel.points("hw.status")
