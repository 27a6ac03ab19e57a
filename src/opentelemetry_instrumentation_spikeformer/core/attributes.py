"""Attribute keys and bounded values of our spans and metrics.

Span attributes live under the ``spikeformer.`` namespace. Metric attribute
keys keep the Prometheus label names the dashboards and alerts were designed
with (``model_type``, ``hardware_target``, ...). Where OpenTelemetry's
semantic conventions define a key (``error.type``, ``code.function.name``,
``hw.*``) it is imported from ``opentelemetry-semantic-conventions``.
"""

from __future__ import annotations

from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.schemas import Schemas

# Instrumentation scope of every tracer and meter of this plugin, and the
# semantic-conventions schema its names follow.
SCOPE = "opentelemetry_instrumentation_spikeformer"
SCHEMA_URL = Schemas.V1_44_0.value

# --------------------------------------------------------------------------
# Span attributes
# --------------------------------------------------------------------------
OPERATION = "spikeformer.operation"  # conversion | compilation | export | deployment
FRAMEWORK = "spikeformer.framework"
MODEL_TYPE = "spikeformer.model.type"
MODEL_NAME = "spikeformer.model.name"  # a configured, bounded name
MODEL_PARAMETERS = "spikeformer.model.parameters"
MODEL_LAYERS = "spikeformer.model.layers"
MODEL_SIZE = "spikeformer.model.size"
HARDWARE_TARGET = "spikeformer.hardware.target"
TIMESTEPS = "spikeformer.snn.timesteps"
SPIKING_LAYERS = "spikeformer.snn.spiking_layers"
SUCCESS = "spikeformer.success"
CALIBRATION_SAMPLES = "spikeformer.calibration.samples"
CALIBRATION_BATCHES = "spikeformer.calibration.batches"
RECIPE = "spikeformer.recipe"
STAGE = "spikeformer.stage"
LAYER_NAME = "spikeformer.layer.name"
EXPORT_DIRECTION = "spikeformer.export.direction"  # to_nir | from_nir
MEMORY_GROWTH = "spikeformer.memory.peak_growth"

# --------------------------------------------------------------------------
# Metric attribute keys (Prometheus label names after export)
# --------------------------------------------------------------------------
M_MODEL_TYPE = "model_type"
M_HARDWARE_TARGET = "hardware_target"  # conversion and monitor metrics
M_TARGET_HARDWARE = "target_hardware"  # compiler metrics
M_MODEL_SIZE = "model_size"
M_FRAMEWORK = "framework"
M_OPERATION = "operation"
M_ERROR_TYPE = ERROR_TYPE  # Prometheus label error_type
M_MODEL_NAME = "model_name"
M_LAYER_NAME = "layer_name"
M_NEURON_TYPE = "neuron_type"
M_SYNOP_INPUT = "synop_input"  # spikes | spike_sums | graded (monitor/dataflow.CATEGORIES)
M_NETWORK = "network"  # ann | snn (benchmark runner)
M_TIMESTEPS = "timesteps"  # benchmark sweep only: a configured set of at most MAX_SWEEP_TIMESTEPS

# Values used when something is not known; bounded by construction.
UNSPECIFIED = "none"
OTHER = "other"

# --------------------------------------------------------------------------
# Structured log events: the logger our events go to and their ``event_type``
# --------------------------------------------------------------------------
EVENTS_LOGGER = "spikeformer.events"
EVENT_TYPE = "event_type"
EVENT_TYPES = (
    "conversion_start", "conversion_end", "conversion_error",
    "compilation_start", "compilation_end", "compilation_error",
    "spike_activity", "hardware_error", "hardware_recovered",
)

# --------------------------------------------------------------------------
# Operations: the ``operation`` column of a target row and the span verb
# --------------------------------------------------------------------------
CONVERSION = "conversion"
COMPILATION = "compilation"
EXPORT = "export"
DEPLOYMENT = "deployment"
OPERATIONS = (CONVERSION, COMPILATION, EXPORT, DEPLOYMENT)
SPAN_VERB = {CONVERSION: "convert", COMPILATION: "compile", EXPORT: "export",
             DEPLOYMENT: "deploy"}

# Model size classes by parameter count: a bounded label for the duration histogram.
MODEL_SIZE_CLASSES = (
    (100_000, "tiny"),
    (1_000_000, "small"),
    (10_000_000, "medium"),
    (100_000_000, "large"),
)
MODEL_SIZE_LARGEST = "xlarge"


def model_size_class(parameters: int | None) -> str:
    """Bucket a parameter count into a label with six possible values."""
    if parameters is None:
        return UNSPECIFIED
    for limit, name in MODEL_SIZE_CLASSES:
        if parameters < limit:
            return name
    return MODEL_SIZE_LARGEST
