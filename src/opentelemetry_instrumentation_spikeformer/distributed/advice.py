"""One-time hints at ``instrument()`` about a multi-process configuration that
loses or blurs ranks' telemetry. Each is given at most once per process.

- The stock ``prometheus`` exporter with several processes per node (or the
  launcher wrapped around torchrun): only the first process to bind the port
  serves; in the others the SDK's configuration raises and the launcher leaves
  them uninstrumented. A warning on the exporter logger (``EXPORTER_LOG``),
  from the process that won: the ones that lost never get this far.
- A rank whose resource lacks ``spikeformer.distributed.rank``: the ranks are
  still distinct (random ``service.instance.id``) but not by rank; the hint
  (INFO) names the detector variable.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from ..core import attributes as a
from ..core.process import is_torchrun_agent, rank_info
from ..core.settings import parse_list
from . import EXPORTER_LOG

_LOG = logging.getLogger(__name__)
DETECTORS_VAR = "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"
_given: set[str] = set()


def _once(key: str) -> bool:
    if key in _given:
        return False
    _given.add(key)
    return True


def check(tracer_provider: Any = None, meter_provider: Any = None,
          environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    _stock_prometheus(env)
    _rank_resource(env, tracer_provider, meter_provider)


def _stock_prometheus(env: Mapping[str, str]) -> None:
    if "prometheus" not in parse_list(env.get("OTEL_METRICS_EXPORTER", "")):
        return
    try:
        per_node = int(env.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError:
        per_node = 1
    if per_node > 1:
        where = f"each of the {per_node} processes of this node"
    elif is_torchrun_agent():
        where = "the torchrun agent (instrumented because the launcher wraps torchrun) and its ranks"
    else:
        return
    if _once("prometheus"):
        port = env.get("OTEL_EXPORTER_PROMETHEUS_PORT") or "9464"
        EXPORTER_LOG.warning(
            "OTEL_METRICS_EXPORTER=prometheus: %s binds port %s; the first one serves, the "
            "others start uninstrumented. Use OTEL_METRICS_EXPORTER=spikeformer_prometheus "
            "(port + LOCAL_RANK) or otlp", where, port)


def _resource(tracer_provider: Any, meter_provider: Any) -> Any:
    from opentelemetry import metrics, trace

    tracer_provider = tracer_provider or trace.get_tracer_provider()
    resource = getattr(tracer_provider, "resource", None)
    if resource is None:
        meter_provider = meter_provider or metrics.get_meter_provider()
        resource = getattr(getattr(meter_provider, "_sdk_config", None), "resource", None)
    return resource


def _rank_resource(env: Mapping[str, str], tracer_provider: Any, meter_provider: Any) -> None:
    info = rank_info(env)
    if info is None:
        return
    resource = _resource(tracer_provider, meter_provider)
    attributes = getattr(resource, "attributes", None)
    if attributes is None or a.DIST_RANK in attributes:
        return  # no SDK (nothing exported anyway), or the detector ran
    if _once("resource"):
        _LOG.info("spikeformer: this is rank %d of %d but its resource has no %s; set %s="
                  "spikeformer_distributed to tell the ranks apart by rank", info.rank,
                  info.world_size, a.DIST_RANK, DETECTORS_VAR)
