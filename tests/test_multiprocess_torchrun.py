"""End to end: ``torchrun --standalone --nproc_per_node=2`` (gloo, CPU) runs a
user script with no OpenTelemetry code under the real ``opentelemetry-instrument``;
each rank converts the tiny CNN with sinabs and runs the monitored SNN.

One run, exporting two ways at once, as README's multi-process section says:
OTLP (gRPC) to a real rotel receiver on loopback, and the
``spikeformer_prometheus`` pull exporter, scraped by a real Prometheus while the
ranks hold. The ranks also serve /health and poll the host adapter. Asserted:
both ranks' conversions, spike counters and resource attributes arrive exactly
once and are told apart; each rank serves /metrics and /health on base +
LOCAL_RANK, and Prometheus sums spikes by rank through ``target_info``; only
LOCAL_RANK 0 reports the host.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from collector_support import (
    VENV_BIN, Process, Received, by_instance, free_port, free_port_run, http_json,
    launcher_env, parse_received, require_tool, start_rotel, wait_until,
)
from opentelemetry_instrumentation_spikeformer.core import attributes as a
from opentelemetry_instrumentation_spikeformer.core.process import rank_info

pytestmark = [pytest.mark.subprocess, pytest.mark.servers, pytest.mark.timeout(300)]
JOB = Path(__file__).parent / "scripts" / "ddp_job.py"
SPAN = "spikeformer.convert sinabs"
# README's join: each rank's spikes, labelled with its rank from target_info.
BY_RANK = ("sum by (spikeformer_distributed_rank) (neural_spikes_total * on (job, instance) "
           "group_left (spikeformer_distributed_rank) target_info)")


def torchrun(*args: str) -> list[str]:
    """torchrun outside, the launcher inside (the agent stays uninstrumented);
    full paths, because the launcher execs the python it finds on PATH."""
    return [str(VENV_BIN / "torchrun"), *args, str(VENV_BIN / "opentelemetry-instrument"),
            sys.executable, str(JOB)]


@dataclass
class Run:
    output: str
    returncode: int
    scrapes: dict[int, str]  # LOCAL_RANK -> /metrics text
    health: dict[int, dict]  # LOCAL_RANK -> /health body
    by_rank: dict[str, float]  # BY_RANK as a real Prometheus evaluated it
    received: dict[str, list[Received]]  # service.instance.id -> rotel blocks

    def rank(self, rank: int) -> list[Received]:
        (blocks,) = [b for b in self.received.values()
                     if b[0].resource.get(a.DIST_RANK) == str(rank)]
        return blocks


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def start_prometheus(tmp: Path, targets: list[str]) -> tuple[Process, str]:
    """A real Prometheus scraping ``targets`` every second: (process, API url)."""
    port = free_port()
    config = {"global": {"scrape_interval": "1s"},
              "scrape_configs": [{"job_name": "ranks", "static_configs": [{"targets": targets}]}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = Process([require_tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}"], tmp / "prometheus.log")
    return proc, f"http://127.0.0.1:{port}"


def query(url: str, promql: str) -> dict[str, float]:
    body = http_json(f"{url}/api/v1/query", {"query": promql})
    assert body["status"] == "success", body
    return {"".join(r["metric"].values()): float(r["value"][1]) for r in body["data"]["result"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("torchrun")
    metrics_base, health_base, hold = free_port_run(2), free_port_run(2), tmp / "go"
    rotel, grpc, _http = start_rotel(tmp, "rotel")
    prometheus, prometheus_url = start_prometheus(
        tmp, [f"127.0.0.1:{metrics_base + local}" for local in (0, 1)])
    try:
        env = launcher_env(
            OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp,spikeformer_prometheus",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc}",
            OTEL_METRIC_EXPORT_INTERVAL="600000",  # the one OTLP export is the final flush
            OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_base),
            OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="spikeformer_distributed",
            OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS="host",
            OTEL_PYTHON_SPIKEFORMER_HEALTH_SERVER="true",
            OTEL_PYTHON_SPIKEFORMER_HEALTH_PORT=str(health_base),
            TMPDIR=str(tmp))  # torchelastic_* temp dirs
        job = Process(torchrun("--standalone", "--nproc_per_node=2") + ["--hold-until", str(hold)],
                      tmp / "job.log", env=env)
        try:
            wait_until(lambda: job.output().count("ready rank=") == 2 or not job.alive(),
                       timeout=150, what="both ranks to finish their work")
            assert job.alive(), job.output()
            scrapes = {local: _get(f"http://127.0.0.1:{metrics_base + local}/metrics")
                       for local in (0, 1)}
            health = {local: json.loads(_get(f"http://127.0.0.1:{health_base + local}/health"))
                      for local in (0, 1)}
            # Each rank's final counts, as it served them; Prometheus must come to
            # the same numbers by rank (a scrape taken during the work shows less).
            served = {str(local): sum(_prometheus_spikes(text).values())
                      for local, text in scrapes.items()}
            wait_until(lambda: query(prometheus_url, BY_RANK) == served, timeout=60,
                       what=f"Prometheus to scrape both ranks' final counts {served}\n"
                            f"{prometheus.output()[-2000:]}")
            by_rank = query(prometheus_url, BY_RANK)
            hold.touch()
            returncode = job.proc.wait(60)
        finally:
            job.stop()
        wait_until(lambda: rotel.output().count("-> Name: spikeformer.conversions") >= 2,
                   timeout=20, what="both ranks' final export at rotel")
        wait_until(lambda: rotel.output().count(SPAN) >= 2, timeout=20, what="both spans")
        received = by_instance(parse_received(rotel.output()))
        return Run(job.output(), returncode, scrapes, health, by_rank, received)
    finally:
        prometheus.stop()
        rotel.stop()


def test_the_job_runs_as_without_telemetry(run):
    assert run.returncode == 0, run.output[-3000:]
    assert "ready rank=0 world=2 allreduce=1" in run.output
    assert "ready rank=1 world=2 allreduce=1" in run.output
    for trouble in ("Address already in use", "Failed to auto initialize", "Traceback"):
        assert trouble not in run.output, run.output[-3000:]


def test_each_rank_arrives_once_with_its_own_resource(run):
    assert len(run.received) == 2, list(run.received)  # two processes, nothing else
    run_ids = set()
    for rank in (0, 1):
        blocks = run.rank(rank)
        resource = blocks[0].resource
        assert all(b.resource == resource for b in blocks)
        assert resource[a.DIST_WORLD_SIZE] == "2" and resource[a.DIST_LOCAL_RANK] == str(rank)
        assert resource[a.DIST_NODE_RANK] == "0" and resource["service.name"] == "snn-job"
        run_ids.add(resource[a.DIST_RUN_ID])
        expected = rank_info({"RANK": str(rank), "WORLD_SIZE": "2",
                              "TORCHELASTIC_RUN_ID": resource[a.DIST_RUN_ID]}).instance_id
        assert resource["service.instance.id"] == expected
    assert len(run_ids) == 1  # one job


def test_each_ranks_conversion_span_arrives_exactly_once(run):
    for rank in (0, 1):
        spans = [name for b in run.rank(rank) for name in b.spans]
        assert spans.count(SPAN) == 1, spans


def _prometheus_spikes(text: str) -> dict[str, float]:
    return {s.labels["layer_name"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "neural_spikes_total"}


def test_each_ranks_metrics_arrive_in_one_export_and_match_what_it_served(run):
    for rank in (0, 1):
        exports = [b for b in run.rank(rank) if b.kind == "metrics"]
        assert len(exports) == 1  # the final flush, once
        (export,) = exports
        assert export.total("spikeformer.conversions") == 1
        spikes = {attrs["layer_name"]: float(v) for attrs, v in export.metrics["neural.spikes"]}
        assert len(spikes) == 3 and sum(spikes.values()) > 0  # three spiking layers
        # The same process' pull endpoint served the same cumulative counts.
        assert _prometheus_spikes(run.scrapes[rank]) == spikes


def test_each_rank_serves_prometheus_on_base_plus_local_rank(run):
    for local in (0, 1):
        families = {f.name: f for f in text_string_to_metric_families(run.scrapes[local])}
        (info,) = families["target_info"].samples
        assert info.labels["spikeformer_distributed_rank"] == str(local)
        (conversions,) = families["spikeformer_conversions"].samples
        assert conversions.value == 1


def test_prometheus_tells_the_ranks_apart_through_target_info(run):
    otlp = {str(rank): sum(float(v) for b in run.rank(rank)
                           for _attrs, v in b.metrics.get("neural.spikes", ()))
            for rank in (0, 1)}
    assert run.by_rank == otlp and all(otlp.values())


def test_each_rank_serves_health_on_health_port_plus_local_rank(run):
    assert {local: body["status"] for local, body in run.health.items()} == {
        0: "healthy", 1: "healthy"}


def test_only_local_rank_0_reports_the_host(run):
    # system.* / process.* come from opentelemetry-instrumentation-system-metrics
    # in every process (its own business); ours are the hw.* of the host adapter.
    def host_metrics(rank: int) -> set[str]:
        return {m for b in run.rank(rank) for m in b.metrics if m.startswith("hw.")}

    assert "hw.status" in host_metrics(0)
    assert host_metrics(1) == set()
