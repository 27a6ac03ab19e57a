"""Logs over OTLP to a real receiver: the real `opentelemetry-instrument`
launcher runs a sinabs script, a real rotel-agent (loopback, free ports)
prints what it received, and the records must arrive once each with their
severity, body, extra fields as attributes and the conversion span's trace id."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collector_support import rotel_agent

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.subprocess, pytest.mark.servers]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ATTR = re.compile(r"^\s*-> ([^:]+): (\w+)\((.*)\)$")
_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*: ?(.*)$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "rotel-agent exited at start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"rotel-agent not listening on {port}")


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    """A rotel-agent printing received logs and spans to a file; stopped after."""
    agent = rotel_agent()
    tmp = tmp_path_factory.mktemp("rotel")
    grpc, http = _free_port(), _free_port()
    out = tmp / "rotel.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(agent), "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
             "--otlp-http-endpoint", f"127.0.0.1:{http}", "--exporter", "blackhole",
             "--debug-log", "logs", "--debug-log", "traces",
             "--debug-log-verbosity", "detailed", "--pid-file", str(tmp / "rotel.pid")],
            stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_listening(grpc, proc)
        _wait_listening(http, proc)
        yield {"grpc": f"http://127.0.0.1:{grpc}", "http": f"http://127.0.0.1:{http}",
               "out": out}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def parse_debug_log(text: str) -> tuple[list[dict], list[dict]]:
    """(log records, spans) from rotel's detailed debug output, each with the
    service.name of its resource."""
    logs, spans = [], []
    service, item = None, None
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.rstrip()
        if line.startswith(("ResourceLog #", "ResourceSpans #")):
            service, item = None, None
        elif line.startswith("LogRecord #"):
            item = {"service": service, "attrs": {}}
            logs.append(item)
        elif line.startswith("Span #"):
            item = {"service": service, "attrs": {}}
            spans.append(item)
        elif (attr := _ATTR.match(line)) is not None:
            key, kind, value = attr.groups()
            if item is None:
                if key == "service.name":
                    service = value
            else:
                item["attrs"][key] = f"{kind}({value})"
        elif item is not None and (field := _FIELD.match(line)) is not None:
            key, value = field.groups()
            item.setdefault(key, value.strip())
    return logs, spans


def _run_script(receiver, service: str, protocol: str, env_extra: dict) -> list[dict]:
    """Run tests/scripts/log_events.py under the launcher; its JSON stderr lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    endpoint = receiver["grpc" if protocol == "grpc" else "http"]
    env.update({
        "OTEL_SERVICE_NAME": service, "PIP_NO_INDEX": "1",
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env_extra,
    })
    cmd = [str(BIN / "opentelemetry-instrument"), sys.executable,
           str(HERE / "scripts" / "log_events.py")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-3000:]
    return [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]


def _received(receiver, service: str, expected_logs: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        logs, spans = parse_debug_log(receiver["out"].read_text(errors="replace"))
        logs = [r for r in logs if r["service"] == service]
        spans = [s for s in spans if s["service"] == service]
        if len(logs) >= expected_logs or time.monotonic() > deadline:
            return logs, spans
        time.sleep(0.2)


def _by_event(records: list[dict], event: str) -> list[dict]:
    return [r for r in records if r["attrs"].get("event_type") == f"Str({event})"]


# The script calls setup_logging() (JSON console, level INFO) in each route; what
# differs is which OTel handler exports, and there must be exactly one.
ROUTES = {
    # The SDK's own (deprecated) handler on root: instrumentation-logging steps
    # aside, and so does setup_logging.
    "sdk-handler": ("grpc", {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}),
    # The launcher ran opentelemetry-instrumentation-logging: its handler exports.
    "instrumentation-logging": ("http/protobuf", {}),
    # The launcher skipped it: setup_logging instruments logging itself.
    "setup-logging-bridge": ("grpc", {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging"}),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_event_records_arrive_once_with_attributes_and_trace_id(receiver, route):
    protocol, env_extra = ROUTES[route]
    service = f"logs-{route}"
    lines = _run_script(receiver, service, protocol, env_extra)
    logs, spans = _received(receiver, service, expected_logs=5)

    events = [r for r in logs if "event_type" in r["attrs"]]
    assert len(events) == 5, [r.get("Body") for r in logs]  # each record exactly once
    assert len(_by_event(events, "conversion_start")) == 2
    (end,) = _by_event(events, "conversion_end")
    (error,) = _by_event(events, "conversion_error")
    (hardware,) = _by_event(events, "hardware_error")

    assert end["SeverityText"] == "INFO"
    assert re.fullmatch(r"Str\(spikeformer\.convert sinabs finished in [0-9.]+ s\)", end["Body"])
    assert end["attrs"]["framework"] == "Str(sinabs)"
    assert end["attrs"]["model_type"] == "Str(Sequential)"
    assert end["attrs"]["success"] == "Bool(true)"
    assert error["SeverityText"] == "ERROR"
    assert error["attrs"]["error_type"] == "Str(RuntimeError)"
    assert "channels" in error["attrs"]["error_message"]
    assert hardware["SeverityText"] == "ERROR"
    assert hardware["Body"] == "Str(Hardware error encountered)"
    assert hardware["attrs"]["hardware_type"] == "Str(loihi2)"
    assert hardware["attrs"]["requires_attention"] == "Bool(true)"
    assert not hardware.get("Trace ID")  # logged outside any span

    conversions = {s["Trace ID"] for s in spans if s.get("Name") == "spikeformer.convert sinabs"}
    assert len(conversions) == 2
    assert end["Trace ID"] in conversions and error["Trace ID"] in conversions
    assert end["Trace ID"] != error["Trace ID"]
    # the console JSON line of the same event carries the same trace id
    (json_end,) = [x for x in lines if x.get("event_type") == "conversion_end"]
    assert json_end["trace_id"] == end["Trace ID"] and json_end["span_id"] == end["Span ID"]
