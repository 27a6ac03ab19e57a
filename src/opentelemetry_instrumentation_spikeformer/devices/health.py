"""Health of the process' hardware and telemetry path: ``HealthChecker``, with
the API of the observability design.

``HealthChecker().check_all().overall`` is ``healthy``, ``degraded`` or
``unhealthy``; ``check_hardware().loihi3`` (any adapter name or device kind)
is ``up``, ``degraded``, ``down``, ``absent`` or ``pending``.

The rule:

- unhealthy: a *required* adapter (named in
  ``OTEL_PYTHON_SPIKEFORMER_DEVICE_ADAPTERS``; ``spinnaker`` also when
  ``OTEL_PYTHON_SPIKEFORMER_SPINNAKER_HOST`` is set) has a device down, or found
  none;
- degraded: any other device down or degraded (host memory above 90 % counts),
  an exporter endpoint unreachable, or no OTel SDK configured;
- healthy otherwise.

Hardware comes from the running devices feature when there is one, else from
one probe of every adapter bounded by ``probe_timeout``. Exporter endpoints
are the ones the SDK would use (``OTEL_*_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``,
``OTEL_EXPORTER_PROMETHEUS_*``), checked by a TCP connect with a short timeout.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import entry_points
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..core.scope import is_noop_provider
from ..core.settings import load_settings, parse_list
from ..version import __version__
from . import host as host_adapter
from .base import DEGRADED, FAILED
from .poller import ABSENT, DOWN, PENDING, AdapterView, Poller

HEALTHY, UNHEALTHY = "healthy", "unhealthy"  # and DEGRADED ("degraded")
EXIT_CODES = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}  # Nagios-style; 3: check failed
HTTP_CODES = {HEALTHY: 200, DEGRADED: 200, UNHEALTHY: 503}
ENDPOINT_TIMEOUT_S = 0.5
_OTLP_PORTS = {"grpc": 4317, "http": 4318}
_SIGNALS = ("traces", "metrics", "logs")


# --------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------
class HardwareStatus:
    """Per adapter and per device kind; attribute access (``.loihi3``) as in the design."""

    def __init__(self, views: list[AdapterView], known: frozenset[str] = frozenset()) -> None:
        self.adapters = {v.name: v for v in views}
        self._known = known

    def status(self, key: str) -> str:
        """up | degraded | down | absent | pending for an adapter name or device kind."""
        if key in self.adapters:
            return self.adapters[key].status
        states = [s.state for v in self.adapters.values() for s in v.snapshots
                  if s.device.kind == key]
        if states:
            return DOWN if FAILED in states else DEGRADED if DEGRADED in states else "up"
        owners = [v for v in self.adapters.values() if key in v.kinds]
        if any(v.required and v.status == DOWN for v in owners):
            return DOWN
        if any(v.status == PENDING for v in owners):
            return PENDING
        return ABSENT

    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        known = {k for v in self.adapters.values() for k in v.kinds} | set(self._known)
        if key in self.adapters or key in known:
            return self.status(key)
        raise AttributeError(f"no adapter or device kind {key!r} (known: {sorted(known)})")

    def problems(self) -> tuple[list[str], list[str]]:
        """(reasons for unhealthy, reasons for degraded)."""
        bad, weak = [], []
        for view in self.adapters.values():
            for snap in view.snapshots:
                if snap.state == "ok":
                    continue
                line = f"{view.name}/{snap.device.id} {snap.state}: {snap.error or ''}".rstrip(": ")
                (bad if view.required and snap.state == FAILED else weak).append(line)
        return bad, weak

    def to_dict(self) -> dict[str, Any]:
        return {name: view.to_dict() for name, view in self.adapters.items()}


# --------------------------------------------------------------------------
# Exporters and SDK
# --------------------------------------------------------------------------
@dataclass
class Endpoint:
    host: str
    port: int
    exporters: list[str] = field(default_factory=list)
    reachable: bool | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"endpoint": f"{self.host}:{self.port}", "exporters": self.exporters,
               "reachable": self.reachable}
        if self.error:
            out["error"] = self.error
        return out


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """``http://host:port`` (or ``host:port``) -> (host, port), with a default port."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.hostname or "localhost", parts.port or default_port


def exporter_endpoints(environ: Mapping[str, str]) -> list[Endpoint]:
    """Where the SDK would send telemetry, from the standard OTEL_* variables."""
    found: dict[tuple[str, int], Endpoint] = {}

    def add(name: str, host: str, port: int) -> None:
        found.setdefault((host, port), Endpoint(host, port)).exporters.append(name)

    for signal in _SIGNALS:
        names = parse_list(environ.get(f"OTEL_{signal.upper()}_EXPORTER", "") or "otlp")
        for name in names:
            if name in ("otlp", "otlp_proto_grpc", "otlp_proto_http"):
                protocol = (environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
                            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc")
                if name != "otlp":
                    protocol = name.rsplit("_", 1)[1]
                protocol = "http" if protocol.startswith("http") else "grpc"
                url = (environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
                       or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                       or f"http://localhost:{_OTLP_PORTS[protocol]}")
                add(f"otlp-{protocol}/{signal}", *host_port(url, _OTLP_PORTS[protocol]))
            elif name == "prometheus" and signal == "metrics":
                host = environ.get("OTEL_EXPORTER_PROMETHEUS_HOST") or "localhost"
                port = int(environ.get("OTEL_EXPORTER_PROMETHEUS_PORT") or 9464)
                add("prometheus", host, port)
    return list(found.values())


def check_endpoint(endpoint: Endpoint, timeout: float = ENDPOINT_TIMEOUT_S) -> Endpoint:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            endpoint.reachable = True
    except OSError as exc:
        endpoint.reachable = False
        endpoint.error = f"{type(exc).__name__}: {exc}"
    return endpoint


# --------------------------------------------------------------------------
# Overall
# --------------------------------------------------------------------------
@dataclass
class HealthStatus:
    overall: str
    hardware: HardwareStatus
    exporters: list[Endpoint]
    telemetry: dict[str, Any]
    system: dict[str, Any]
    reasons: list[str]
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    version: str = __version__

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.overall]

    def summary(self) -> dict[str, Any]:
        """The ``/health`` body."""
        return {"status": self.overall, "timestamp": self.timestamp, "version": self.version}

    def to_dict(self) -> dict[str, Any]:
        """The ``/health/detailed`` body."""
        return {**self.summary(), "reasons": self.reasons, "system": self.system,
                "hardware": self.hardware.to_dict(),
                "exporters": [e.to_dict() for e in self.exporters],
                "telemetry": self.telemetry}


class HealthChecker:
    """``check_all()`` / ``check_hardware()`` as in the observability design.

    ``poller``: a ``Poller`` or a callable returning one (or None); by default
    the running devices instrumentor's. ``in_process``: the checker runs inside
    the instrumented program (health server), so the SDK check looks at the
    live providers; a separate process (the CLI) can only check that a
    configurator is installed.
    """

    def __init__(self, settings: Any = None, *, poller: Any = None,
                 tracer_provider: Any = None, meter_provider: Any = None,
                 in_process: bool = True, environ: Mapping[str, str] | None = None,
                 endpoint_timeout: float = ENDPOINT_TIMEOUT_S) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.poller = poller
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.in_process = in_process
        self.environ = os.environ if environ is None else environ
        self.endpoint_timeout = endpoint_timeout

    def _running_poller(self) -> Poller | None:
        if self.poller is not None:
            return self.poller() if callable(self.poller) else self.poller
        from .instrumentor import SpikeformerDevicesInstrumentor

        instrumentor = SpikeformerDevicesInstrumentor()
        return instrumentor.poller if instrumentor.is_instrumented_by_opentelemetry else None

    def check_hardware(self) -> HardwareStatus:
        from . import registry

        poller = self._running_poller()
        if poller is not None:
            views = poller.views()
        else:  # nothing polling: probe once, bounded by probe_timeout
            poller = Poller(registry.enabled_adapters(self.settings),
                            self.settings.device_poll_interval, self.settings.probe_timeout)
            views = poller.run_once()
            poller.stop()
        known = frozenset(k for f in registry.factories().values()
                          for k in getattr(f, "kinds", ()))
        return HardwareStatus(views, known)

    def check_exporters(self) -> list[Endpoint]:
        return [check_endpoint(e, self.endpoint_timeout)
                for e in exporter_endpoints(self.environ)]

    def check_telemetry(self) -> dict[str, Any]:
        configurators = sorted(ep.name for ep in entry_points(group="opentelemetry_configurator"))
        info: dict[str, Any] = {"configurators": configurators}
        if self.in_process:
            from opentelemetry import metrics, trace

            tracer = self.tracer_provider or trace.get_tracer_provider()
            meter = self.meter_provider or metrics.get_meter_provider()
            info.update(tracer_provider=type(tracer).__name__,
                        meter_provider=type(meter).__name__,
                        sdk_configured=not (is_noop_provider(tracer) or is_noop_provider(meter)))
        else:
            info["sdk_configured"] = None  # unknown from outside the program
        return info

    def check_all(self) -> HealthStatus:
        started = time.monotonic()
        hardware = self.check_hardware()
        exporters = self.check_exporters()
        telemetry = self.check_telemetry()
        bad, weak = hardware.problems()
        weak += [f"exporter endpoint {e.host}:{e.port} unreachable ({', '.join(e.exporters)})"
                 for e in exporters if e.reachable is False]
        if telemetry["sdk_configured"] is False:
            weak.append("no OTel SDK configured: telemetry is dropped (run under "
                        "opentelemetry-instrument with opentelemetry-distro installed)")
        elif not self.in_process and not telemetry["configurators"]:
            weak.append("no OTel configurator installed (pip install opentelemetry-distro)")
        overall = UNHEALTHY if bad else DEGRADED if weak else HEALTHY
        system = _system(hardware)
        system["check_seconds"] = round(time.monotonic() - started, 3)
        return HealthStatus(overall, hardware, exporters, telemetry, system, bad + weak)


def _system(hardware: HardwareStatus) -> dict[str, Any]:
    """The design's ``system`` block, from the host and GPU adapters' readings."""
    out: dict[str, Any] = {}
    host = hardware.adapters.get("host")
    for snap in host.snapshots if host else ():
        memory = snap.extra.get(host_adapter.MEMORY_UTILIZATION)
        cpu = snap.extra.get(host_adapter.PROCESS_CPU)
        if memory is not None:
            out["memory_percent"] = round(memory * 100, 1)
        if cpu is not None:
            out["process_cpu_percent"] = round(cpu * 100, 1)
        out["process_rss_bytes"] = snap.extra.get(host_adapter.PROCESS_RSS)
    gpus = [s for v in hardware.adapters.values() for s in v.snapshots
            if s.device.type == "gpu" and s.state != FAILED]
    out["gpu_count"] = len(gpus)
    return out
