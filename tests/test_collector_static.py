"""Static checks of the collector stack: Collector configs against the
otelcol-contrib component list, ports against the SDK defaults, the compose
file, Grafana provisioning, and every metric name against semconv."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from opentelemetry_instrumentation_spikeformer.core import attributes as a

from collector_support import (
    AGENT_TO_GATEWAY_PROTOCOL, ALERTS, COLLECTOR, DASHBOARDS, PROMETHEUS_DIR, REPO, all_dashboard_exprs, dashboard_exprs,
    emitted_metric_names, load_yaml, metric_names, rule_exprs,
)

COMPONENTS = REPO / "tests" / "data" / "otelcol_contrib_components.yaml"
COLLECTOR_CONFIGS = ["otelcol-config.yaml", "agent.yaml", "gateway.yaml"]
KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
COMPOSE = COLLECTOR / "docker-compose.yaml"


# --------------------------------------------------------------------------
# Defaults the app uses, read from the installed SDK (not restated here)
# --------------------------------------------------------------------------
def sdk_otlp_grpc_port() -> int:
    from opentelemetry.exporter.otlp.proto.grpc import exporter

    match = re.search(r'OTEL_EXPORTER_OTLP_ENDPOINT,\s*"([^"]+)"', inspect.getsource(exporter))
    return urlparse(match.group(1)).port


def sdk_otlp_http_port() -> int:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import DEFAULT_ENDPOINT

    return urlparse(DEFAULT_ENDPOINT).port


def sdk_prometheus_port() -> int:
    import opentelemetry.exporter.prometheus as prom

    match = re.search(r'OTEL_EXPORTER_PROMETHEUS_PORT,\s*"(\d+)"', inspect.getsource(prom))
    return int(match.group(1))


def test_sdk_defaults_are_the_well_known_ports():
    # If the SDK ever changes a default, the stack (and this test) must follow.
    assert (sdk_otlp_grpc_port(), sdk_otlp_http_port(), sdk_prometheus_port()) == (4317, 4318, 9464)


# --------------------------------------------------------------------------
# Collector configuration
# --------------------------------------------------------------------------
def known_types() -> dict[str, dict[str, str | None]]:
    """kind -> {type: None, deprecated_alias: current_type}."""
    data = load_yaml(COMPONENTS)
    known: dict[str, dict[str, str | None]] = {}
    for kind in KINDS:
        table = known[kind] = {}
        for row in data["components"][kind]:
            if row["type"]:
                table[row["type"]] = None
            if row.get("deprecated_type"):
                table[row["deprecated_type"]] = row["type"]
    return known


def test_component_data_is_complete_and_sourced():
    data = load_yaml(COMPONENTS)
    assert data["distribution"] == "otelcol-contrib" and data["version"] == "0.159.0"
    header = COMPONENTS.read_text().split("distribution:")[0]
    assert "manifest.yaml" in header and "metadata.yaml" in header
    for kind in KINDS:
        rows = data["components"][kind]
        types = [r["type"] for r in rows if r["type"]]
        assert len(types) == len(set(types)), f"duplicate {kind} type"
        if kind != "receivers":  # receivers are partly unresolved (see header)
            assert sum(1 for r in rows if r["type"] is None) <= 2, kind
    # The components these configs need, checked against their metadata.yaml.
    known = known_types()
    for kind, name in [("receivers", "otlp"), ("processors", "memory_limiter"),
                       ("processors", "batch"), ("processors", "transform"),
                       ("exporters", "prometheus"), ("exporters", "otlp_grpc"),
                       ("exporters", "load_balancing"), ("extensions", "health_check")]:
        assert name in known[kind] and known[kind][name] is None


_ENV_REF = re.compile(r"\$\{[^}]*\}")
_ENV_OK = re.compile(r"^\$\{env:[A-Z_][A-Z0-9_]*(:-[^}]*)?\}$")


def expand_defaults(text: str) -> str:
    """What the collector sees with no variable set: each ``${env:X:-d}`` -> ``d``."""
    return re.sub(r"\$\{env:[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def collector_config(name: str) -> dict:
    return yaml.safe_load(expand_defaults((COLLECTOR / name).read_text()))


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_env_references_use_collector_syntax(name):
    text = (COLLECTOR / name).read_text()
    refs = _ENV_REF.findall(text)
    assert refs, "endpoints must be overridable through ${env:...}"
    bad = [r for r in refs if not _ENV_OK.match(r)]
    assert not bad, f"use ${{env:NAME:-default}}: {bad}"
    stripped = _ENV_REF.sub("", text)
    assert not re.search(r"\$[A-Za-z{]", stripped), "bare $VAR is not expanded by otelcol"
    assert all(":-" in r for r in refs), "every reference needs a default so the file runs as is"


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_pipelines_reference_defined_known_components(name):
    config = collector_config(name)
    known = known_types()
    service = config["service"]
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for pipeline_id, pipeline in service["pipelines"].items():
        signal = pipeline_id.split("/")[0]
        assert signal in {"traces", "metrics", "logs", "profiles"}, pipeline_id
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_id
        for kind in ("receivers", "processors", "exporters"):
            for comp in pipeline.get(kind, []):
                in_kind = comp in (config.get(kind) or {})
                as_connector = kind != "processors" and comp in (config.get("connectors") or {})
                assert in_kind or as_connector, f"{pipeline_id}: {comp} is not defined under {kind}"
                used["connectors" if as_connector and not in_kind else kind].add(comp)
        procs = pipeline.get("processors", [])
        assert procs and procs[0] == "memory_limiter", f"{pipeline_id}: memory_limiter goes first"
        assert "batch" in procs, f"{pipeline_id}: batch missing"
    for ext in service.get("extensions", []):
        assert ext in (config.get("extensions") or {}), f"extension {ext} not defined"
        used["extensions"].add(ext)
    for kind in KINDS:
        for comp_id in config.get(kind) or {}:
            ctype = comp_id.split("/")[0]
            assert ctype in known[kind], f"{kind} type {ctype!r} is not in otelcol-contrib 0.159.0"
            assert known[kind][ctype] is None, (
                f"{ctype!r} is a deprecated alias of {known[kind][ctype]!r}")
            assert comp_id in used[kind], f"{kind} {comp_id} is defined but never used"


def _port(endpoint: str) -> int:
    return int(str(endpoint).rsplit(":", 1)[1])


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_otlp_receiver_listens_on_the_sdk_default_ports(name):
    protocols = collector_config(name)["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == sdk_otlp_grpc_port()
    assert _port(protocols["http"]["endpoint"]) == sdk_otlp_http_port()


@pytest.mark.parametrize("name", ["otelcol-config.yaml", "gateway.yaml"])
def test_prometheus_exporter_serves_8889_with_sdk_names(name):
    config = collector_config(name)
    prom = config["exporters"]["prometheus"]
    assert _port(prom["endpoint"]) == 8889
    assert prom["translation_strategy"] == "UnderscoreEscapingWithSuffixes"
    assert prom["resource_to_telemetry_conversion"]["enabled"] is True
    metrics = config["service"]["pipelines"]["metrics"]
    assert "transform/prometheus_names" in metrics["processors"]
    statements = config["processors"]["transform/prometheus_names"]["metric_statements"]
    assert 'set(metric.unit, "") where metric.unit == "1"' in statements[0]["statements"]
    traces = config["service"]["pipelines"]["traces"]
    assert any(e.startswith("otlp_grpc/jaeger") for e in traces["exporters"])
    assert config["service"]["pipelines"]["logs"]["exporters"] == ["debug"]
    assert "health_check" in config["service"]["extensions"]


def test_gateway_tier_routes_traces_by_trace_id_to_the_gateway_otlp_port():
    agent, gateway = collector_config("agent.yaml"), collector_config("gateway.yaml")
    lb = agent["exporters"]["load_balancing/traces"]
    assert lb["routing_key"] == "traceID"
    assert agent["exporters"]["load_balancing/metrics"]["routing_key"] == "resource"
    gateway_grpc = _port(gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    for exporter in ("load_balancing/traces", "load_balancing/metrics"):
        assert int(agent["exporters"][exporter]["resolver"]["dns"]["port"]) == gateway_grpc
    assert agent["service"]["pipelines"]["traces"]["exporters"] == ["load_balancing/traces"]
    assert "tail_sampling" in gateway["service"]["pipelines"]["traces"]["processors"]


# -- the tier and the ranks' identity (tests/test_multiprocess_gateway.py runs it with rotel)
def test_agents_route_each_ranks_metrics_by_resource_over_the_tested_protocol():
    """Metrics go by resource, whose stable per-rank service.instance.id keeps each
    rank's cumulative series on one gateway; over OTLP/gRPC to the gateways' gRPC
    port, as the rotel gateway test forwards."""
    agent, gateway = collector_config("agent.yaml"), collector_config("gateway.yaml")
    assert agent["service"]["pipelines"]["metrics"]["exporters"] == ["load_balancing/metrics"]
    assert agent["exporters"]["load_balancing/metrics"]["routing_key"] == "resource"
    assert AGENT_TO_GATEWAY_PROTOCOL == "grpc"
    for exporter in ("load_balancing/traces", "load_balancing/metrics"):
        assert list(agent["exporters"][exporter]["protocol"]) == ["otlp"]  # OTLP/gRPC
    assert "grpc" in gateway["receivers"]["otlp"]["protocols"]
    # Host facts from the node never replace what the app reported.
    assert agent["processors"]["resource_detection"]["override"] is False


RANK_IDENTITY = ("service.instance.id", *a.DIST_ATTRIBUTES)
# OTTL functions that drop keys they do not name.
_DROPS_KEYS = re.compile(r"\b(delete_matching_keys|keep_keys|keep_matching_keys|limit)\(")


def identity_changes(config: dict) -> list[str]:
    """Processors of ``config`` that can remove or rewrite a rank's identity
    (``RANK_IDENTITY``) in the resource: attribute actions other than insert on
    those keys, and OTTL resource statements that name them or drop keys wholesale."""
    found = []
    for proc_id, proc in (config.get("processors") or {}).items():
        kind = proc_id.split("/")[0]
        if kind in ("resource", "attributes"):
            for action in proc.get("actions") or proc.get("attributes") or []:
                key, verb = action.get("key") or action.get("pattern", ""), action.get("action")
                if verb != "insert" and (key in RANK_IDENTITY or "pattern" in action):
                    found.append(f"{proc_id}: {verb} {key}")
        elif kind == "transform":
            for block in proc.get("metric_statements", []) + proc.get("trace_statements", []) \
                    + proc.get("log_statements", []):
                for statement in block.get("statements", []):
                    on_resource = block.get("context") == "resource" or "resource.attributes" in statement
                    names = any(key in statement for key in RANK_IDENTITY)
                    if on_resource and (names or _DROPS_KEYS.search(statement)):
                        found.append(f"{proc_id}: {statement}")
    return found


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_no_processor_removes_or_rewrites_a_ranks_identity(name):
    assert identity_changes(collector_config(name)) == []


def test_the_identity_check_finds_what_would_blur_the_ranks():
    bad = {"processors": {
        "resource/x": {"attributes": [{"key": "service.instance.id", "action": "delete"}]},
        "resource/ok": {"attributes": [{"key": a.DIST_RANK, "action": "insert", "value": 0}]},
        "transform/trim": {"metric_statements": [{"context": "resource", "statements": [
            'delete_matching_keys(attributes, "^spikeformer\\\\..*")']}]}}}
    assert [line.split(":")[0] for line in identity_changes(bad)] == ["resource/x", "transform/trim"]


# --------------------------------------------------------------------------
# docker-compose and Grafana provisioning
# --------------------------------------------------------------------------
def compose() -> dict:
    return load_yaml(COMPOSE)


def published(service: dict) -> dict[int, int]:
    """container port -> host port."""
    ports = {}
    for spec in service.get("ports", []):
        host, _, container = str(spec).rpartition(":")
        ports[int(container.split("/")[0])] = int(host.rsplit(":", 1)[-1])
    return ports


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    mounts = []
    for spec in service.get("volumes", []):
        source, target = str(spec).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE.parent / source).resolve(), target))
    return mounts


def test_compose_images_are_pinned():
    for name, service in compose()["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: pin {image}"
    assert compose()["services"]["otel-collector"]["image"].endswith(":0.159.0"), (
        "the collector image must match tests/data/otelcol_contrib_components.yaml")
    # Jaeger v2 (one image, OTLP in natively) is what the otlp_grpc/jaeger exporter targets.
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", compose()["services"]["jaeger"]["image"])


def test_compose_ports_match_the_design_and_the_collector_config():
    services = compose()["services"]
    assert published(services["grafana"]) == {3000: 3000}
    assert published(services["prometheus"]) == {9090: 9090}
    col = published(services["otel-collector"])
    for port in (sdk_otlp_grpc_port(), sdk_otlp_http_port(), 8889):
        assert col.get(port) == port, f"collector port {port} not published as {port}"
    # Jaeger must not fight the collector for 4317/4318 on the host.
    assert set(published(services["jaeger"])) == {16686}


def test_compose_mounts_exist_and_feed_the_right_paths():
    services = compose()["services"]
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            if source.name == "secrets":
                continue  # filled in by the operator (git-ignored), README inside
            assert source.exists(), f"{name}: {source} does not exist in the repository"
    col = services["otel-collector"]
    config_arg = next(a for a in col["command"] if a.startswith("--config="))
    target = config_arg.split("=", 1)[1]
    assert (COLLECTOR / "otelcol-config.yaml").resolve() in [
        s for s, t in bind_mounts(col) if t == target]
    prom = services["prometheus"]
    mounted = {t: s for s, t in bind_mounts(prom)}
    conf_target = next(a for a in prom["command"] if a.startswith("--config.file=")).split("=")[1]
    assert mounted[conf_target] == (PROMETHEUS_DIR / "prometheus.yml").resolve()
    for rule_file in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["rule_files"]:
        assert str(Path(conf_target).parent / rule_file) in mounted, f"{rule_file} not mounted"


def test_grafana_provisioning_points_at_the_dashboards():
    grafana = compose()["services"]["grafana"]
    mounts = {t: s for s, t in bind_mounts(grafana)}
    prov = mounts["/etc/grafana/provisioning"]
    providers = load_yaml(prov / "dashboards" / "dashboards.yaml")["providers"]
    for provider in providers:
        source = mounts[provider["options"]["path"]]
        assert sorted(source.glob("*.json")) == DASHBOARDS and len(DASHBOARDS) >= 2
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder, _, file = home.rpartition("/")
    assert (mounts[folder] / file).exists()
    datasources = load_yaml(prov / "datasources" / "datasources.yaml")["datasources"]
    uids = {d["uid"]: d for d in datasources}
    services = compose()["services"]
    for uid in uids.values():
        url = urlparse(uid["url"])
        assert url.hostname in services, f"datasource {uid['name']} points at unknown host"
        assert url.port in published(services[url.hostname]), f"{uid['name']}: port {url.port}"
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            ds = panel.get("datasource")
            if ds:
                assert ds["uid"] in uids, f"{path.name}: {panel['title']} uses unknown datasource"


def test_prometheus_scrapes_collector_and_app_on_their_ports():
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    col_exporter = _port(collector_config("otelcol-config.yaml")["exporters"]["prometheus"]["endpoint"])
    assert targets["otel-collector"] == [f"otel-collector:{col_exporter}"]
    assert [_port(t) for t in targets["spikeformer-app"]] == [sdk_prometheus_port()]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "otel-collector")
    assert job["honor_labels"] is True
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == [f"alertmanager:{list(published(compose()['services']['alertmanager']))[0]}"]


# --------------------------------------------------------------------------
# Metric names: nothing on a dashboard or in a rule that we do not emit
# --------------------------------------------------------------------------
@pytest.mark.parametrize("expr,expected", [
    ('sum by (job, framework) (rate(spikeformer_conversion_errors_total[10m]))',
     {"spikeformer_conversion_errors_total"}),
    ('hw_status{hw_state="ok", job=~"$job"} == 0', {"hw_status"}),
    ('histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket{a="b"}[$__rate_interval])))',
     {"x_seconds_bucket"}),
    ('a / on(job) group_left(instance) b offset 5m > bool 1e3', {"a", "b"}),
    ('{__name__="target_info", job="x"}', {"target_info"}),
    ('max_over_time(up[5m:1m]) unless absent(foo)', {"up", "foo"}),
])
def test_metric_name_extraction(expr, expected):
    assert metric_names(expr) == expected


def test_every_rule_and_dashboard_metric_is_emitted():
    allowed = emitted_metric_names()
    used = {**{f"alert {k}": v for k, v in rule_exprs().items()}, **all_dashboard_exprs()}
    assert len(rule_exprs()) == 6 and len(all_dashboard_exprs()) > 20
    unknown = {where: sorted(metric_names(expr) - allowed) for where, expr in used.items()
               if metric_names(expr) - allowed}
    assert not unknown, f"metrics not in core_metrics.all_metrics(): {unknown}"
    for where, expr in used.items():
        assert metric_names(expr), f"{where}: no metric name found in {expr!r}"


def test_dashboards_are_well_formed():
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["targets"], f"{path.name}: {panel['title']} has no query"
    assert {"spikeformer-overview", "spikeformer-hardware"} <= uids


def test_dashboards_cover_the_seed_panels():
    text = {p.stem: " ".join(dashboard_exprs(p).values()) for p in DASHBOARDS}
    overview, hardware = text["spikeformer-overview"], text["spikeformer-hardware"]
    for name in ("spikeformer_conversions_total", "spikeformer_active_conversions",
                 "spikeformer_conversion_duration_seconds_bucket",
                 "spikeformer_conversion_errors_total", "neural_spikes_total",
                 "energy_efficiency_ratio", "spike_compiler_energy_estimate_mJ"):
        assert name in overview, name
    for name in ("hw_status", "hw_power_watts", "hw_errors_total", "system_memory_utilization",
                 "neuromorphic_compile_core_utilization"):
        assert name in hardware, name
    assert "histogram_quantile(0.5," in overview and "histogram_quantile(0.95," in overview


def test_alert_rules_name_the_seed_alerts():
    assert set(rule_exprs()) == {
        "HighConversionErrorRate", "HighCompilationFailureRate", "HardwareDisconnected",
        "HighMemoryUsage", "EnergyEfficiencyDegraded", "HardwareCommunicationErrors"}
    assert ALERTS.exists()
