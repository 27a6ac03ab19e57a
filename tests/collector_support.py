"""Shared helpers for the collector-stack tests: the stack's files, PromQL
metric-name extraction, free loopback ports, and real processes that are always
stopped again."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from opentelemetry_instrumentation_spikeformer.core import metrics as core_metrics

REPO = Path(__file__).resolve().parent.parent
COLLECTOR = REPO / "collector"
PROMETHEUS_DIR = COLLECTOR / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
ALERTMANAGER = PROMETHEUS_DIR / "alertmanager.yml"
DASHBOARDS = sorted((COLLECTOR / "grafana" / "dashboards").glob("*.json"))
WORKLOAD = REPO / "tests" / "workloads" / "pipeline.py"
VENV_BIN = Path(sys.executable).parent

# Series every OTel Prometheus exporter (SDK and Collector) serves besides the
# instruments themselves: resource attributes. Dashboards may use it for the
# job variable.
EXPORTER_SERIES = frozenset({"target_info"})
# Host and process series of opentelemetry-instrumentation-system-metrics (the
# devices extra), which the alerts and the hardware dashboard use; not ours.
# tests/test_devices_poller.py checks them against the real instrumentation.
SYSTEM_METRICS_SERIES = frozenset({
    "system_memory_utilization", "process_memory_usage_bytes", "process_cpu_utilization"})


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------
# Metric names
# --------------------------------------------------------------------------
def emitted_metric_names() -> frozenset[str]:
    """Every Prometheus series name the plugin can produce (semconv contract), and
    system-metrics' host series the stack relies on."""
    names = set(EXPORTER_SERIES | SYSTEM_METRICS_SERIES)
    for spec in core_metrics.all_metrics():
        names.add(spec.prometheus)
        if spec.kind == "histogram":
            names.update(spec.prometheus + s for s in ("_bucket", "_sum", "_count"))
    return frozenset(names)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "atan2", "inf", "nan", "Inf", "NaN", "start", "end",
})


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not
    functions, keywords, label names, strings, durations or numbers."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers (and $variables in them)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries, $__rate_interval
    text = _GROUPING.sub(" ", text)  # label lists of by(...), on(...), ...
    for match in _IDENT.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isalnum() or before in "._":  # 1e3, 5m, 0.5x
            continue
        if text[match.end():].lstrip().startswith("("):  # function or aggregation
            continue
        if match.group(0) not in _KEYWORDS:
            names.add(match.group(0))
    return names


def rule_exprs() -> dict[str, str]:
    """Alert name -> expression, from alerts.yml."""
    return {rule["alert"]: rule["expr"] for group in load_yaml(ALERTS)["groups"]
            for rule in group["rules"] if "alert" in rule}


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]
            if "alert" in rule]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*[a-zA-Z_]\w*\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$")


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs(path: Path) -> dict[str, str]:
    """"<panel title> [refId]" -> PromQL, including template-variable queries."""
    board = json.loads(path.read_text(encoding="utf-8"))
    exprs = {}
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                exprs[f"{panel['title']} [{target['refId']}]"] = target["expr"]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if var.get("type") != "query" or not query:
            continue
        match = _LABEL_VALUES.match(query) or _QUERY_RESULT.match(query)
        exprs[f"variable {var['name']}"] = match.group(1) if match else query
    return exprs


def all_dashboard_exprs() -> dict[str, str]:
    return {f"{p.name}: {k}": v for p in DASHBOARDS for k, v in dashboard_exprs(p).items()}


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's macros and variables so Prometheus can evaluate the query."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
    return re.sub(r"\$\{?\w+\}?", ".+", expr)  # multi-value variables are regexes


# --------------------------------------------------------------------------
# Tools and processes
# --------------------------------------------------------------------------
def require_tool(name: str) -> str:
    """Path of a server binary; a missing one fails (CI installs them)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run scripts/install-servers.sh "
                    f"(Debian packages prometheus and prometheus-alertmanager)", pytrace=False)
    return path


def rotel_agent() -> Path:
    """The rotel-agent binary shipped inside the ``rotel`` wheel."""
    try:
        import rotel
    except ImportError:
        pytest.fail("the rotel package is missing: pip install -e .[test]", pytrace=False)
    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.exists():
        pytest.fail(f"rotel-agent binary not found at {path}", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_run(count: int) -> int:
    """A port with ``count`` free consecutive ports from it (base + LOCAL_RANK)."""
    for _ in range(100):
        base = free_port()
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports")


def run(args: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


class Process:
    """A child process whose output goes to a file, stopped by ``stop``."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None,
                 stdin=subprocess.DEVNULL, cwd: Path | None = None) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=stdin, env=env, cwd=cwd)

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._out.close()
        return self.proc.returncode


@contextmanager
def process(args: list[str], log: Path, **kw) -> Iterator[Process]:
    proc = Process(args, log, **kw)
    try:
        yield proc
    finally:
        proc.stop()


def wait_until(check, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``check()`` until it returns a truthy value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else ""), pytrace=False)


def http_json(url: str, params: dict | None = None, timeout: float = 5) -> dict:
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:  # Prometheus explains a 4xx in a JSON body
        try:
            return json.loads(exc.read().decode())
        except ValueError:
            raise exc from None


def workload_env(**extra: str) -> dict[str, str]:
    """Environment for the workload under ``opentelemetry-instrument``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "OTEL_SERVICE_NAME": "spikeformer-workload",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        # The PyPI samna stub runs pip on import: make any such pip fail at once.
        "PIP_NO_INDEX": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def workload_command(*args: str) -> list[str]:
    """The real launcher around the workload, as a user would run it."""
    launcher = VENV_BIN / "opentelemetry-instrument"
    if not launcher.exists():
        pytest.fail(f"{launcher} missing: the sdk extra is not installed", pytrace=False)
    return [str(launcher), sys.executable, str(WORKLOAD), *args]


# -- what rotel received ------------------------------------------------------
@dataclass
class Span:
    name: str
    status: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


_ATTR = re.compile(r"^\s*-> ([\w.\-]+): (\w+)\((.*)\)\s*$")


def parse_spans(text: str) -> list[Span]:
    """Spans from rotel's ``--debug-log traces --debug-log-verbosity detailed``."""
    spans: list[Span] = []
    current, in_attrs = None, False
    for line in text.splitlines():
        if line.startswith("Span #"):
            current, in_attrs = Span(""), False
            spans.append(current)
        elif line.startswith(("ResourceSpans #", "ScopeSpans #", "ResourceMetrics #")):
            current = None
        elif current is not None:
            stripped = line.strip()
            if stripped.startswith("Name") and ":" in stripped and not current.name:
                current.name = stripped.split(":", 1)[1].strip()
            elif stripped.startswith("Status code"):
                current.status = stripped.split(":", 1)[1].strip()
            elif stripped == "Attributes:":
                in_attrs = True
            elif in_attrs and (m := _ATTR.match(line)):
                current.attributes[m.group(1)] = m.group(3)
            elif in_attrs and not stripped.startswith("->"):
                in_attrs = False
    return spans


def parse_metric_names(text: str) -> set[str]:
    return set(re.findall(r"^\s*-> Name: (\S+)\s*$", text, re.MULTILINE))


# How the agent tier forwards to the gateway tier: collector/agent.yaml's
# load_balancing exporters speak OTLP/gRPC to the gateways' gRPC port; the
# rotel gateway test forwards the same way (test_collector_static checks both).
AGENT_TO_GATEWAY_PROTOCOL = "grpc"


def start_rotel(tmp: Path, name: str, *exporter: str) -> tuple[Process, int, int]:
    """A real OTLP receiver (rotel-agent) on loopback that logs everything it
    receives in detail: (process, gRPC port, HTTP port). ``exporter``: its
    exporter arguments (default: ``--exporter blackhole``, i.e. only the log).
    Stop it with ``.stop()``."""
    grpc_port, http_port = free_port(), free_port()
    proc = Process(
        [str(rotel_agent()), "start",
         "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
         *(exporter or ("--exporter", "blackhole")),
         "--debug-log", "traces", "--debug-log", "metrics",
         "--debug-log-verbosity", "detailed",
         # Defaults are /tmp/rotel-agent.{pid,log}, shared by every rotel.
         "--pid-file", str(tmp / f"{name}.pid"), "--log-file", str(tmp / f"{name}.internal.log")],
        tmp / f"{name}.log", env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    try:
        wait_until(lambda: "Starting Rotel" in proc.output() or not proc.alive(),
                   timeout=20, what=f"rotel {name} to start")
        assert proc.alive(), proc.output()
    except BaseException:
        proc.stop()
        raise
    return proc, grpc_port, http_port


@dataclass
class Received:
    """One ResourceSpans / ResourceMetrics block of rotel's detailed log."""

    kind: str  # "spans" | "metrics"
    resource: dict[str, str] = field(default_factory=dict)
    spans: list[str] = field(default_factory=list)  # span names
    metrics: dict[str, list[tuple[dict[str, str], str]]] = field(default_factory=dict)

    def total(self, metric: str) -> float:
        return sum(float(value) for _attrs, value in self.metrics.get(metric, ()))


_POINT = re.compile(r"^(Number|Histogram|ExponentialHistogram|Summary)DataPoints #\d+")


def parse_received(text: str) -> list[Received]:
    """rotel's detailed log as blocks, each with its resource attributes, span
    names and metric points (attributes, value or count). Typed values keep
    their text: ``Int(1)`` -> ``"1"``, ``Str(x)`` -> ``"x"``."""
    blocks: list[Received] = []
    cur: Received | None = None
    section, metric, point = None, None, None
    for line in text.splitlines():
        s = line.strip()
        if line.startswith(("ResourceSpans #", "ResourceMetrics #")):
            cur = Received("spans" if line.startswith("ResourceSpans") else "metrics")
            blocks.append(cur)
            section, metric, point = None, None, None
            continue
        if cur is None:
            continue
        if s == "Resource attributes:":
            section = "resource"
        elif s.startswith(("ScopeSpans #", "ScopeMetrics #")):
            section = None
        elif section == "resource" and (m := _ATTR.match(line)):
            cur.resource[m.group(1)] = m.group(3)
        elif cur.kind == "spans":
            section = "span" if s.startswith("Span #") else section
            if section == "span" and s.startswith("Name") and ":" in s and not s.startswith("Name:"):
                cur.spans.append(s.split(":", 1)[1].strip())
                section = None
        elif m := re.match(r"^-> Name: (\S+)$", s):
            metric = m.group(1)
            cur.metrics.setdefault(metric, [])
            section = None
        elif _POINT.match(s):
            point, section = {}, "point"
        elif section == "point" and s == "Data point attributes:":
            section = "point-attrs"
        elif section == "point-attrs" and (m := _ATTR.match(line)):
            point[m.group(1)] = m.group(3)
        elif section in ("point", "point-attrs") and metric and point is not None \
                and (m := re.match(r"^(Value|Count): (.+)$", s)):
            cur.metrics[metric].append((point, m.group(2)))
            point, section = None, None
    return blocks


def by_instance(blocks: list[Received]) -> dict[str, list[Received]]:
    """Blocks grouped by the ``service.instance.id`` of their resource."""
    grouped: dict[str, list[Received]] = {}
    for block in blocks:
        grouped.setdefault(block.resource.get("service.instance.id", "?"), []).append(block)
    return grouped


def launcher_env(**extra: str) -> dict[str, str]:
    """Environment for a job under the launcher: no OTEL_* and no torchrun
    variables inherited, every exporter off unless ``extra`` turns it on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "RANK", "WORLD_SIZE", "LOCAL_", "TORCHELASTIC",
                                "MASTER_", "GROUP_"))}
    env.update({
        "OTEL_SERVICE_NAME": "snn-job", "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS": "none",
        "PIP_NO_INDEX": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
    })
    env.update(extra)
    return env
