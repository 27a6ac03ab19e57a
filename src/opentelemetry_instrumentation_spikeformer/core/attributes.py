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
RECIPE_MODE = "spikeformer.recipe.mode"  # a recipe's own mode string (STA: spiking_encoder ...)
# Transformer shape of a model, where it is readable (config or attention modules)
TRANSFORMER_LAYERS = "spikeformer.model.transformer.layers"
TRANSFORMER_HEADS = "spikeformer.model.transformer.heads"
TRANSFORMER_KV_HEADS = "spikeformer.model.transformer.kv_heads"
TRANSFORMER_EMBED_DIM = "spikeformer.model.transformer.embed_dim"
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
# Compile-time resources of a chip mapping (frameworks/mapping.py)
M_STATE = "state"  # used | available
M_ROUTING_TABLE = "table"  # uncompressed | compressed
M_STATISTIC = "statistic"  # total | max_per_chip

# Values used when something is not known; bounded by construction.
UNSPECIFIED = "none"
OTHER = "other"

# --------------------------------------------------------------------------
# Resource attributes of one process of a torch.distributed job (resource
# detector ``spikeformer_distributed``, distributed/resource.py). No semantic
# convention covers ranks, so they live in our namespace. Bounded: one value
# per process, constant for its lifetime.
# --------------------------------------------------------------------------
DIST_RANK = "spikeformer.distributed.rank"  # RANK, < world_size
DIST_WORLD_SIZE = "spikeformer.distributed.world_size"  # WORLD_SIZE
DIST_LOCAL_RANK = "spikeformer.distributed.local_rank"  # LOCAL_RANK (rank on its node)
DIST_NODE_RANK = "spikeformer.distributed.node_rank"  # GROUP_RANK
DIST_RUN_ID = "spikeformer.distributed.run_id"  # TORCHELASTIC_RUN_ID (one per job)
DIST_ATTRIBUTES = (DIST_RANK, DIST_WORLD_SIZE, DIST_LOCAL_RANK, DIST_NODE_RANK, DIST_RUN_ID)

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
