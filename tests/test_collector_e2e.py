"""End to end: a real Prometheus server on loopback scrapes a real workload run
under ``opentelemetry-instrument`` with ``OTEL_METRICS_EXPORTER=prometheus``.

Every metric name a dashboard panel or an alert expression uses must return a
series, the alert rules load and evaluate, and the panels' queries evaluate.
One workload and one Prometheus for the whole module."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

import pytest
import yaml

from device_helpers import make_rapl_zone
from collector_support import (
    ALERTS, Process, alert_rules, all_dashboard_exprs, free_port, grafana_to_promql,
    http_json, metric_names, require_tool, rule_exprs, wait_until, workload_command,
    workload_env,
)

pytestmark = [pytest.mark.subprocess, pytest.mark.servers, pytest.mark.timeout(420)]

JOB = "spikeformer-workload"
# Observable instruments of the monitor and device adapters may first report
# after a probe interval: give missing names this long before failing.
LATE_SERIES_S = 20.0


@dataclass
class Stack:
    prometheus: Process
    workload: Process
    url: str

    def query(self, promql: str) -> dict:
        body = http_json(f"{self.url}/api/v1/query", {"query": promql})
        assert body["status"] == "success", body
        return body["data"]

    def has_series(self, name: str) -> bool:
        return bool(self.query(f'count({{__name__="{name}"}})')["result"])

    def scrapes(self) -> int:
        result = self.query(f'count_over_time(up{{job="{JOB}"}}[10m])')["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def diagnostics(self) -> str:
        return (f"--- workload output ---\n{self.workload.output()[-4000:]}\n"
                f"--- prometheus output ---\n{self.prometheus.output()[-2000:]}")


def referenced_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (alerts and dashboard panels)."""
    uses: dict[str, set[str]] = {}
    for where, expr in [*((f"alert {k}", v) for k, v in rule_exprs().items()),
                        *all_dashboard_exprs().items()]:
        for name in metric_names(expr):
            uses.setdefault(name, set()).add(where)
    return uses


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    prometheus_bin = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("e2e")
    app_port, prom_port = free_port(), free_port()
    gate, done = tmp / "gate", tmp / "done"
    # This CI machine has no RAPL and no GPU: the real rapl adapter reads a
    # powercap tree made here, whose package counter a thread advances.
    zone = make_rapl_zone(tmp / "powercap", 0, "package-0", energy=0, max_range=2**40)
    stop_power = threading.Event()

    def burn():
        energy = 0
        while not stop_power.wait(0.2):
            energy += 3_000_000  # 3 J per 0.2 s: about 15 W
            (zone / "energy_uj.new").write_text(f"{energy}\n")  # atomic, as sysfs reads are
            (zone / "energy_uj.new").replace(zone / "energy_uj")

    threading.Thread(target=burn, daemon=True).start()
    workload = Process(
        workload_command("--rounds", "2", "--gate", str(gate), "--done-file", str(done),
                         "--timeout", "300", "--spinnaker"),
        tmp / "workload.log",
        env=workload_env(OTEL_METRICS_EXPORTER="prometheus",
                         OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
                         OTEL_EXPORTER_PROMETHEUS_PORT=str(app_port),
                         OTEL_PYTHON_SPIKEFORMER_RAPL_ROOT=str(tmp / "powercap"),
                         OTEL_PYTHON_SPIKEFORMER_DEVICE_POLL_INTERVAL="0.5"))
    prometheus = None
    try:
        wait_until(lambda: "ROUND 1 DONE" in workload.output() or not workload.alive(),
                   timeout=180, what="the workload's first round")
        assert workload.alive(), f"workload exited early:\n{workload.output()}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": JOB,
                                "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = Process(
            [prometheus_bin, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            tmp / "prometheus.log")
        stack = Stack(prometheus, workload, f"http://127.0.0.1:{prom_port}")
        wait_until(lambda: stack.scrapes() >= 2, timeout=60,
                   what="Prometheus to scrape the workload twice\n" + stack.diagnostics())
        # Second round while scraped: counters and histograms now move.
        (tmp / "gate.2").touch()
        wait_until(lambda: "READY" in workload.output() or not workload.alive(),
                   timeout=120, what="the workload's second round")
        assert workload.alive(), f"workload exited early:\n{workload.output()}"
        first = stack.scrapes()
        wait_until(lambda: stack.scrapes() >= first + 3, timeout=30, what="three more scrapes")
        yield stack
    finally:
        stop_power.set()
        done.touch()
        if prometheus is not None:
            prometheus.stop()
        try:
            workload.proc.wait(30)  # it exits by itself once the done file exists
        except subprocess.TimeoutExpired:
            pass
        workload.stop()


def test_workload_target_is_up(stack):
    result = stack.query(f'up{{job="{JOB}"}}')["result"]
    assert [r["value"][1] for r in result] == ["1"], stack.diagnostics()


def test_core_metrics_moved_while_scraped(stack):
    """The second round happened under observation: rates are real, not 0/0."""
    conv = stack.query('sum by (framework) (increase(spikeformer_conversions_total[5m]))')
    moved = {r["metric"]["framework"]: float(r["value"][1]) for r in conv["result"]}
    assert moved.get("sinabs", 0) > 0 and moved.get("spikingjelly", 0) > 0, moved
    errors = stack.query('sum(increase(spike_compiler_compilation_errors_total[5m]))')["result"]
    assert errors and float(errors[0]["value"][1]) > 0


def test_every_dashboard_and_alert_metric_returns_a_series(stack):
    uses = referenced_names()
    assert len(uses) >= 15, uses

    def missing() -> list[str]:
        return sorted(name for name in uses if not stack.has_series(name))

    try:
        wait_until(lambda: not missing(), timeout=LATE_SERIES_S, interval=1.0,
                   what="every referenced metric")
    except pytest.fail.Exception:
        gone = missing()
        detail = "\n".join(f"  {n}: used by {', '.join(sorted(uses[n]))}" for n in gone)
        pytest.fail(f"{len(gone)} of {len(uses)} metric names used by dashboards/alerts "
                    f"have no series in Prometheus:\n{detail}\n{stack.diagnostics()}",
                    pytrace=False)


def test_alert_rules_load_and_evaluate(stack):
    def evaluated():
        groups = http_json(f"{stack.url}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else None

    rules = wait_until(evaluated, timeout=15, what="rule evaluation")
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in alert_rules())
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad, bad


def test_forced_failures_trip_the_error_rate_alerts(stack):
    """One failed sinabs conversion in two and one failed NIR export in two are
    far above the thresholds: both alerts must at least be pending."""
    def states():
        alerts = http_json(f"{stack.url}/api/v1/alerts")["data"]["alerts"]
        return {(a["labels"]["alertname"], a["labels"].get("framework") or
                 a["labels"].get("operation")) for a in alerts}

    wait_until(lambda: {("HighConversionErrorRate", "sinabs"),
                        ("HighCompilationFailureRate", "export")} <= states(),
               timeout=15, what="the error-rate alerts to go pending")


def test_dashboard_queries_evaluate(stack):
    present = {n for n in referenced_names() if stack.has_series(n)}
    empty, errors = [], {}
    for where, expr in all_dashboard_exprs().items():
        body = http_json(f"{stack.url}/api/v1/query", {"query": grafana_to_promql(expr)})
        if body["status"] != "success":
            errors[where] = body.get("error")
        elif metric_names(expr) <= present and not body["data"]["result"]:
            empty.append(where)
    assert not errors, errors
    assert not empty, f"panels with data but an empty result: {empty}"
