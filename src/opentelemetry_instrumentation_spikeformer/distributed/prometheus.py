"""``spikeformer_prometheus``: the SDK's Prometheus pull exporter, one port per rank.

    OTEL_METRICS_EXPORTER=spikeformer_prometheus opentelemetry-instrument python job.py

The same as the stock ``prometheus`` exporter (``PrometheusMetricReader``
serving ``OTEL_EXPORTER_PROMETHEUS_HOST``:``OTEL_EXPORTER_PROMETHEUS_PORT``),
except:

- in a torchrun rank it serves on ``OTEL_EXPORTER_PROMETHEUS_PORT +
  LOCAL_RANK``: every rank of a node has its own scrape target (ports base ..
  base + LOCAL_WORLD_SIZE - 1), ``target_info`` tells the ranks apart;
- a helper process (spawn/forkserver worker, resource tracker, the torchrun
  agent when the launcher wraps torchrun; ``core.process``) serves nothing;
- a port it cannot bind is one warning naming the variable; the SDK set-up and
  every instrumentor still run. The stock reader raises ``OSError`` from the
  SDK's configuration there, and the launcher then leaves that whole process
  uninstrumented, with two tracebacks.

The SDK instantiates it (entry point group ``opentelemetry_metrics_exporter``,
no arguments) exactly where it would instantiate the stock reader: before any
instrumentor runs, which is why this is an exporter and not instrumentor code.
"""

from __future__ import annotations

import logging
import os

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_PROMETHEUS_HOST, OTEL_EXPORTER_PROMETHEUS_PORT,
)
from prometheus_client import start_http_server

from ..core.process import helper_kind, rank_info
from . import EXPORTER_LOG

DEFAULT_PORT = 9464  # the SDK's default (specification: Prometheus exporter)
DEFAULT_HOST = "localhost"


def _base_port(env) -> int:
    raw = env.get(OTEL_EXPORTER_PROMETHEUS_PORT, "").strip()
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        EXPORTER_LOG.warning("%s=%r is not a port number; using %d",
                             OTEL_EXPORTER_PROMETHEUS_PORT, raw, DEFAULT_PORT)
        return DEFAULT_PORT
    return port


def plan(env=None) -> tuple[int | None, str]:
    """(port this process serves on, or None; why), from its environment."""
    env = os.environ if env is None else env
    base = _base_port(env)
    helper = helper_kind()
    if helper is not None:
        return None, f"not served: this is {helper}"
    info = rank_info(env)
    if info is None:
        return base, f"{OTEL_EXPORTER_PROMETHEUS_PORT}={base}"
    local = info.local_rank if info.local_rank is not None else info.rank
    why = (f"rank {info.rank} of {info.world_size}: {OTEL_EXPORTER_PROMETHEUS_PORT}={base} "
           f"+ LOCAL_RANK {local}")
    if base == 0:  # any free port, one per rank
        return 0, why
    if base + local > 65535:
        return None, f"not served: {why} is beyond 65535"
    return base + local, why


class RankAwarePrometheusMetricReader(PrometheusMetricReader):
    """The stock reader with a port per rank (see the module doc). ``port`` is
    where it serves (None: not served)."""

    def __init__(self) -> None:
        super().__init__()
        self.port: int | None = None
        self._server = None
        port, why = plan()
        if port is None:
            EXPORTER_LOG.log(logging.WARNING if "beyond" in why else logging.INFO,
                             "spikeformer_prometheus: /metrics %s", why)
            return
        host = os.environ.get(OTEL_EXPORTER_PROMETHEUS_HOST) or DEFAULT_HOST
        try:
            self._server, _thread = start_http_server(port=port, addr=host)
        except OSError as exc:
            EXPORTER_LOG.warning(
                "spikeformer_prometheus: cannot serve /metrics on %s:%s (%s): %s; this "
                "process' metrics are not served (set %s, or push with OTLP)",
                host, port, why, exc.strerror or exc, OTEL_EXPORTER_PROMETHEUS_PORT)
            return
        self.port = self._server.server_address[1]
        EXPORTER_LOG.info("spikeformer_prometheus: serving /metrics on %s:%s (%s)",
                          host, self.port, why)
