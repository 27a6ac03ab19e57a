"""The gateway tier on loopback with real OTLP software: two "nodes", one rank
each, each push OTLP to their own rotel agent, as with a DaemonSet; both agents
forward to one rotel gateway (collector/agent.yaml -> gateway.yaml).

Each rank is the user's script under the real launcher, with the environment
``torchrun --nnodes=2 --nproc_per_node=1 --node_rank=N --master_addr=...`` gives
its worker (a static rendezvous: no run id); the ranks rendezvous over gloo
themselves. torchrun's own agent is left out to keep the test fast: it runs in
test_multiprocess_torchrun.py.

Asserted at the gateway: every rank's conversion span and its one metrics
export arrive exactly once, with rank, node rank and a stable instance id
(static rendezvous: no run id, the job key is the store address), and the
spike counts the agent received are forwarded unchanged. Rotel has no
load-balancing exporter: the routing by resource of agent.yaml is checked
statically (test_collector_static.py), with the same protocol as here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from collector_support import (
    AGENT_TO_GATEWAY_PROTOCOL, VENV_BIN, Process, Received, free_port, launcher_env,
    parse_received, start_rotel, wait_until,
)
from opentelemetry_instrumentation_spikeformer.core import attributes as a
from opentelemetry_instrumentation_spikeformer.core.process import rank_info

pytestmark = [pytest.mark.subprocess, pytest.mark.servers, pytest.mark.timeout(300)]
JOB = Path(__file__).parent / "scripts" / "ddp_job.py"
SPAN = "spikeformer.convert sinabs"


def rank_of_node(node_rank: int, master_port: int) -> dict[str, str]:
    """What torchrun --nnodes=2 --nproc_per_node=1 (static rendezvous) sets."""
    return {"RANK": str(node_rank), "WORLD_SIZE": "2", "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": str(node_rank), "GROUP_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port),
            "TORCHELASTIC_RUN_ID": "none"}


@pytest.fixture(scope="module")
def tier(tmp_path_factory) -> dict:
    """What the gateway and each agent received from the two-node job (and
    the job's rendezvous port)."""
    tmp = tmp_path_factory.mktemp("gateway")
    servers = []
    try:
        gateway, gateway_grpc, _ = start_rotel(tmp, "gateway")
        servers.append(gateway)
        agents = []
        for name in ("agent0", "agent1"):
            agent, grpc, _ = start_rotel(
                tmp, name, "--exporter", "otlp",
                "--otlp-exporter-endpoint", f"http://127.0.0.1:{gateway_grpc}",
                "--otlp-exporter-protocol", AGENT_TO_GATEWAY_PROTOCOL,
                "--batch-timeout", "100ms")
            servers.append(agent)
            agents.append((agent, grpc))
        master_port, jobs = free_port(), []
        for node_rank, (_agent, grpc) in enumerate(agents):
            env = launcher_env(OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp",
                               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc}",
                               OTEL_METRIC_EXPORT_INTERVAL="600000",
                               OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="spikeformer_distributed",
                               **rank_of_node(node_rank, master_port))
            jobs.append(Process([str(VENV_BIN / "opentelemetry-instrument"), sys.executable,
                                 str(JOB)], tmp / f"node{node_rank}.log", env=env))
        for job in jobs:
            try:
                assert job.proc.wait(180) == 0, job.output()[-3000:]
            finally:
                job.stop()
        wait_until(lambda: gateway.output().count("-> Name: spikeformer.conversions") >= 2
                   and gateway.output().count(SPAN) >= 2, timeout=30,
                   what=f"both ranks at the gateway\n{gateway.output()[-2000:]}")
        time.sleep(1.0)  # a late duplicate would arrive here
        received = {name: parse_received(server.output())
                    for name, server in zip(("gateway", "agent0", "agent1"), servers)}
        return {**received, "master_port": master_port}
    finally:
        for server in reversed(servers):
            server.stop()


def _ranks(blocks: list[Received]) -> set[str]:
    return {b.resource.get(a.DIST_RANK) for b in blocks}


def test_each_agent_received_only_its_own_nodes_rank(tier):
    assert _ranks(tier["agent0"]) == {"0"} and _ranks(tier["agent1"]) == {"1"}


def test_every_rank_arrives_at_the_gateway_exactly_once(tier):
    for rank in ("0", "1"):
        blocks = [b for b in tier["gateway"] if b.resource.get(a.DIST_RANK) == rank]
        spans = [name for b in blocks for name in b.spans]
        exports = [b for b in blocks if b.kind == "metrics"]
        assert spans.count(SPAN) == 1, spans
        assert len(exports) == 1 and exports[0].total("spikeformer.conversions") == 1
    assert _ranks(tier["gateway"]) == {"0", "1"}


def test_rank_attribution_survives_both_hops(tier):
    by_rank = {b.resource[a.DIST_RANK]: b.resource for b in tier["gateway"]}
    for rank, resource in by_rank.items():
        assert resource[a.DIST_NODE_RANK] == rank and resource[a.DIST_WORLD_SIZE] == "2"
        assert a.DIST_RUN_ID not in resource  # static rendezvous: TORCHELASTIC_RUN_ID=none
        store = {"RANK": rank, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(tier["master_port"])}  # the job key falls back to it
        assert resource["service.instance.id"] == rank_info(store).instance_id
    assert by_rank["0"]["service.instance.id"] != by_rank["1"]["service.instance.id"]


def test_spike_counts_are_forwarded_unchanged(tier):
    def spikes(blocks: list[Received]) -> dict:
        return {(b.resource[a.DIST_RANK], attrs["layer_name"]): value for b in blocks
                for attrs, value in b.metrics.get("neural.spikes", ())}

    at_agents = {**spikes(tier["agent0"]), **spikes(tier["agent1"])}
    assert len(at_agents) == 6 and spikes(tier["gateway"]) == at_agents
