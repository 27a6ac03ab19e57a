"""Metric specs of the device adapters: OpenTelemetry's hardware semantic
conventions (names, attribute keys and instrument kinds as semconv defines
them; values are observed, so counters and up-down counters are observable).

Host and process metrics (``system.memory.utilization``, ``process.memory.usage``,
``process.cpu.utilization``) are not ours: opentelemetry-instrumentation-system-metrics
(in the ``devices`` extra) emits them under those semconv names, and two
definitions under one name would conflict.
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.hw_attributes import (
    HW_ID,
    HW_NAME,
    HW_STATE,
    HW_TYPE,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics

from ..core.attributes import M_ERROR_TYPE
from ..core.metrics import MetricSpec

HW_ATTRS = (HW_ID, HW_TYPE, HW_NAME)

HW_POWER = MetricSpec(
    hw_metrics.HW_POWER, "observable_gauge", "W", "hw_power_watts", HW_ATTRS,
    "Instantaneous power draw", "neuromorphic_power_watts",
)
HW_ENERGY = MetricSpec(
    hw_metrics.HW_ENERGY, "observable_counter", "J", "hw_energy_joules_total", HW_ATTRS,
    "Energy consumed since the device counter started",
)
HW_STATUS = MetricSpec(
    hw_metrics.HW_STATUS, "observable_up_down_counter", "1", "hw_status", HW_ATTRS + (HW_STATE,),
    "1 for the device's current state (hw.state=ok|degraded|failed), 0 for the others",
    "loihi2_health_status / spinnaker_health_status",
)
HW_ERRORS = MetricSpec(
    hw_metrics.HW_ERRORS, "observable_counter", "{error}", "hw_errors_total",
    HW_ATTRS + (M_ERROR_TYPE,), "Hardware communication errors (failed or timed-out probes)",
)
HW_UTILIZATION = MetricSpec(
    hw_metrics.HW_GPU_UTILIZATION, "observable_gauge", "1", "hw_gpu_utilization", HW_ATTRS,
    "Accelerator utilisation, 0..1",
)
HW_MEMORY_USAGE = MetricSpec(
    hw_metrics.HW_GPU_MEMORY_USAGE, "observable_up_down_counter", "By",
    "hw_gpu_memory_usage_bytes", HW_ATTRS, "Accelerator memory in use",
)
HW_MEMORY_LIMIT = MetricSpec(
    hw_metrics.HW_GPU_MEMORY_LIMIT, "observable_up_down_counter", "By",
    "hw_gpu_memory_limit_bytes", HW_ATTRS, "Accelerator memory size",
)
HW_TEMPERATURE = MetricSpec(
    hw_metrics.HW_TEMPERATURE, "observable_gauge", "Cel", "hw_temperature_celsius", HW_ATTRS,
    "Device temperature",
)
NEUROMORPHIC_CORE_UTILIZATION = MetricSpec(
    "neuromorphic.core.utilization", "observable_gauge", "1", "neuromorphic_core_utilization",
    HW_ATTRS, "Fraction of neuro-cores in use (no per-core label)",
    "loihi2_core_utilization_percent",
)
NEUROMORPHIC_SYNAPSE_UPDATES = MetricSpec(
    "neuromorphic.synapse.updates", "observable_counter", "{update}",
    "neuromorphic_synapse_updates_total", HW_ATTRS, "Synapse updates reported by the device",
    "loihi2_synapse_updates_total",
)
HARDWARE_METRICS = (
    HW_POWER, HW_ENERGY, HW_STATUS, HW_ERRORS, HW_UTILIZATION, HW_MEMORY_USAGE,
    HW_MEMORY_LIMIT, HW_TEMPERATURE, NEUROMORPHIC_CORE_UTILIZATION, NEUROMORPHIC_SYNAPSE_UPDATES,
)
