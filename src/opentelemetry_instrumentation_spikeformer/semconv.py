"""Names, units and attribute keys that this plugin emits: one place, so that
code, dashboards, alerts and README cannot drift apart.

Metric names are OTel names; the SDK's Prometheus exporter turns ``.`` into
``_``, adds the unit suffix (``s`` -> ``_seconds``) and ``_total`` on counters.
Metric attribute keys keep the seeds' Prometheus label names (``model_type``,
``hardware_target``, ...) so that the seeds' queries keep working; span
attributes live under the ``spikeformer.`` namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

# Instrumentation scope of every tracer and meter of this plugin.
SCOPE = "opentelemetry_instrumentation_spikeformer"

# --------------------------------------------------------------------------
# Span attributes
# --------------------------------------------------------------------------
OPERATION = "spikeformer.operation"  # conversion | compilation | export | deployment
FRAMEWORK = "spikeformer.framework"
MODEL_TYPE = "spikeformer.model.type"
MODEL_NAME = "spikeformer.model.name"  # a configured, bounded name (benchmark runner)
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
LAYER_TYPE = "spikeformer.layer.type"
EXPORT_DIRECTION = "spikeformer.export.direction"  # to_nir | from_nir
MEMORY_GROWTH = "spikeformer.memory.peak_growth"

# --------------------------------------------------------------------------
# Metric attribute keys (Prometheus label names after export)
# --------------------------------------------------------------------------
M_MODEL_TYPE = "model_type"
M_HARDWARE_TARGET = "hardware_target"  # conversion metrics (seed label)
M_TARGET_HARDWARE = "target_hardware"  # compiler metrics (seed label)
M_MODEL_SIZE = "model_size"
M_FRAMEWORK = "framework"
M_OPERATION = "operation"
M_ERROR_TYPE = "error.type"  # OTel semconv; Prometheus label error_type
M_MODEL_NAME = "model_name"
M_LAYER_NAME = "layer_name"
M_NEURON_TYPE = "neuron_type"
M_NETWORK = "network"  # ann | snn (benchmark runner)
M_TIMESTEPS = "timesteps"  # benchmark sweep only: a configured set of at most MAX_SWEEP_TIMESTEPS

# Values used when something is not known; bounded by construction.
UNSPECIFIED = "none"
OTHER = "other"

# Operation names (row column) and the span verb each gets.
CONVERSION = "conversion"
COMPILATION = "compilation"
EXPORT = "export"
DEPLOYMENT = "deployment"
OPERATIONS = (CONVERSION, COMPILATION, EXPORT, DEPLOYMENT)
SPAN_VERB = {
    CONVERSION: "convert",
    COMPILATION: "compile",
    EXPORT: "export",
    DEPLOYMENT: "deploy",
}

# Explicit histogram boundaries in seconds, 1 ms ... 1 h (the SDK default is
# shaped for milliseconds).
DURATION_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)
# Bytes, 1 MiB ... 64 GiB.
MEMORY_BUCKETS_BY = tuple(float(2**p) for p in range(20, 37, 2))

# Model size classes by parameter count: bounded label for the duration histogram.
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


# Hardware targets we keep as label values; anything else becomes "other".
KNOWN_HARDWARE = frozenset(
    {
        "speck2e", "speck2edevkit", "speck2f", "speck2fdevkit", "speck2fmodule",
        "speck2", "speck", "dynapcnndevkit", "dynapcnn", "xylo", "xyloaudio3",
        "xyloimu", "loihi", "loihi2", "loihi3", "spinnaker", "spinnaker2",
        "akida", "truenorth", "nir", "cpu", "cuda", "gpu", "mps", "simulator",
    }
)


def hardware_label(value: object) -> str:
    """Canonical, bounded hardware target: ``"speck2fdevkit:0"`` -> ``"speck2fdevkit"``."""
    if value is None:
        return UNSPECIFIED
    text = getattr(value, "type", None) if not isinstance(value, str) else value
    if not isinstance(text, str):
        text = str(value)
    text = text.strip().lower().split(":", 1)[0].replace("-", "").replace("_", "")
    if not text:
        return UNSPECIFIED
    return text if text in KNOWN_HARDWARE else OTHER


@dataclass(frozen=True)
class MetricSpec:
    """One emitted instrument; README's metric table is checked against these."""

    name: str
    kind: str  # counter | updowncounter | histogram | gauge | observable_counter
    unit: str
    prometheus: str
    attributes: tuple[str, ...]
    seed: str  # the name the seed documents used, "" when new
    description: str


_CONV_ATTRS = (M_MODEL_TYPE, M_HARDWARE_TARGET, M_FRAMEWORK)
_COMP_ATTRS = (M_MODEL_TYPE, M_TARGET_HARDWARE, M_FRAMEWORK, M_OPERATION)

CONVERSIONS = MetricSpec(
    "spikeformer.conversions", "counter", "{conversion}",
    "spikeformer_conversions_total", _CONV_ATTRS,
    "spikeformer_conversions_total", "ANN to SNN conversions started (success or not)",
)
CONVERSION_ERRORS = MetricSpec(
    "spikeformer.conversion.errors", "counter", "{error}",
    "spikeformer_conversion_errors_total", _CONV_ATTRS + (M_ERROR_TYPE,),
    "spikeformer_conversion_errors_total", "Conversions that raised",
)
CONVERSION_DURATION = MetricSpec(
    "spikeformer.conversion.duration", "histogram", "s",
    "spikeformer_conversion_duration_seconds", (M_MODEL_SIZE, M_FRAMEWORK),
    "spikeformer_conversion_duration_seconds", "Wall time of a conversion",
)
ACTIVE_CONVERSIONS = MetricSpec(
    "spikeformer.active_conversions", "updowncounter", "{conversion}",
    "spikeformer_active_conversions", (M_FRAMEWORK,),
    "spikeformer_active_conversions", "Conversions in progress",
)
COMPILATIONS = MetricSpec(
    "spike_compiler.compilations", "counter", "{compilation}",
    "spike_compiler_compilations_total", _COMP_ATTRS,
    "spike_compiler_compilations_total",
    "Compilations, NIR exports/imports and deployments started",
)
COMPILATION_ERRORS = MetricSpec(
    "spike_compiler.compilation.errors", "counter", "{error}",
    "spike_compiler_compilation_errors_total", _COMP_ATTRS + (M_ERROR_TYPE,),
    "", "Compilations, exports and deployments that raised",
)
COMPILATION_DURATION = MetricSpec(
    "spike_compiler.compilation.duration", "histogram", "s",
    "spike_compiler_compilation_duration_seconds", (M_TARGET_HARDWARE, M_FRAMEWORK, M_OPERATION),
    "spike_compiler_compilation_duration_seconds", "Wall time of a compilation/export/deployment",
)
COMPILATION_MEMORY = MetricSpec(
    "spike_compiler.compilation.memory_growth", "histogram", "By",
    "spike_compiler_compilation_memory_growth_bytes", (M_TARGET_HARDWARE, M_FRAMEWORK, M_OPERATION),
    "", "Growth of the process' peak RSS during a compilation (memory usage during compilation)",
)

CORE_METRICS = (
    CONVERSIONS, CONVERSION_ERRORS, CONVERSION_DURATION, ACTIVE_CONVERSIONS,
    COMPILATIONS, COMPILATION_ERRORS, COMPILATION_DURATION, COMPILATION_MEMORY,
)

# --------------------------------------------------------------------------
# Runtime monitor: spike activity and energy (monitor/ package)
# --------------------------------------------------------------------------
_LAYER_ATTRS = (M_MODEL_NAME, M_LAYER_NAME, M_NEURON_TYPE)
_ENERGY_ATTRS = (M_MODEL_NAME, M_HARDWARE_TARGET)

NEURAL_SPIKES = MetricSpec(
    "neural.spikes", "observable_counter", "{spike}", "neural_spikes_total",
    _LAYER_ATTRS, "neural_spikes_total", "Spikes fired per layer (no timestep label)",
)
NEURAL_SYNOPS = MetricSpec(
    "neural.synops", "observable_counter", "{synop}", "neural_synops_total",
    _LAYER_ATTRS, "", "Synaptic operations: spikes x fan-out of the next weight layer",
)
NEURAL_FIRING_RATE = MetricSpec(
    "neural.firing_rate", "gauge", "{spike}/{neuron}/{timestep}", "neural_firing_rate",
    _LAYER_ATTRS, "", "Spikes per neuron per timestep over the last collection interval",
)
SPIKE_RATE = MetricSpec(
    "spike.rate", "gauge", "Hz", "spike_rate_hertz",
    _LAYER_ATTRS, "spike_rate_hz", "Per-neuron firing rate in Hz (timestep length configurable)",
)
MEMBRANE_POTENTIAL = MetricSpec(
    "membrane_potential", "histogram", "1", "membrane_potential",
    _LAYER_ATTRS, "membrane_potential", "Membrane potential distribution per layer (not per neuron)",
)
ENERGY_ESTIMATE = MetricSpec(
    "spike_compiler.energy_estimate", "gauge", "mJ", "spike_compiler_energy_estimate_mJ",
    _ENERGY_ATTRS, "spike_compiler_energy_estimate_mj", "Estimated energy per inference",
)
ENERGY_EFFICIENCY = MetricSpec(
    "energy_efficiency_ratio", "gauge", "1", "energy_efficiency_ratio",
    _ENERGY_ATTRS, "energy_efficiency_ratio", "ANN energy / SNN energy for the same inference",
)
MONITOR_METRICS = (
    NEURAL_SPIKES, NEURAL_SYNOPS, NEURAL_FIRING_RATE, SPIKE_RATE, MEMBRANE_POTENTIAL,
    ENERGY_ESTIMATE, ENERGY_EFFICIENCY,
)

# --------------------------------------------------------------------------
# Hardware (devices/ adapters), OTel hardware semantic conventions
# --------------------------------------------------------------------------
HW_ID, HW_TYPE, HW_NAME, HW_VENDOR, HW_STATE = "hw.id", "hw.type", "hw.name", "hw.vendor", "hw.state"
_HW_ATTRS = (HW_ID, HW_TYPE, HW_NAME)

HW_POWER = MetricSpec(
    "hw.power", "gauge", "W", "hw_power_watts", _HW_ATTRS,
    "neuromorphic_power_watts", "Instantaneous power draw",
)
HW_ENERGY = MetricSpec(
    "hw.energy", "observable_counter", "J", "hw_energy_joules_total", _HW_ATTRS,
    "", "Energy consumed since the device counter started",
)
HW_STATUS = MetricSpec(
    "hw.status", "gauge", "1", "hw_status", _HW_ATTRS + (HW_STATE,),
    "loihi2_health_status / spinnaker_health_status",
    "1 for the device's current state (hw.state=ok|degraded|failed), 0 for the others",
)
HW_ERRORS = MetricSpec(
    "hw.errors", "observable_counter", "{error}", "hw_errors_total", _HW_ATTRS + (M_ERROR_TYPE,),
    "", "Hardware communication errors (failed or timed-out probes)",
)
HW_UTILIZATION = MetricSpec(
    "hw.gpu.utilization", "gauge", "1", "hw_gpu_utilization", _HW_ATTRS,
    "", "Accelerator utilisation, 0..1",
)
HW_MEMORY_USAGE = MetricSpec(
    "hw.gpu.memory.usage", "gauge", "By", "hw_gpu_memory_usage_bytes", _HW_ATTRS,
    "", "Accelerator memory in use",
)
HW_MEMORY_LIMIT = MetricSpec(
    "hw.gpu.memory.limit", "gauge", "By", "hw_gpu_memory_limit_bytes", _HW_ATTRS,
    "", "Accelerator memory size",
)
HW_TEMPERATURE = MetricSpec(
    "hw.temperature", "gauge", "Cel", "hw_temperature_celsius", _HW_ATTRS,
    "", "Device temperature",
)
SYSTEM_MEMORY_UTILIZATION = MetricSpec(
    "system.memory.utilization", "gauge", "1", "system_memory_utilization", (),
    "node_memory_* (HighMemoryUsage)", "Host memory in use, 0..1",
)
PROCESS_MEMORY_USAGE = MetricSpec(
    "process.memory.usage", "gauge", "By", "process_memory_usage_bytes", (),
    "", "Resident set size of this process",
)
PROCESS_CPU_UTILIZATION = MetricSpec(
    "process.cpu.utilization", "gauge", "1", "process_cpu_utilization", (),
    "", "CPU used by this process, 0..1 of all cores",
)
NEUROMORPHIC_CORE_UTILIZATION = MetricSpec(
    "neuromorphic.core.utilization", "gauge", "1", "neuromorphic_core_utilization", _HW_ATTRS,
    "loihi2_core_utilization_percent", "Fraction of neuro-cores in use (no per-core label)",
)
NEUROMORPHIC_SYNAPSE_UPDATES = MetricSpec(
    "neuromorphic.synapse.updates", "observable_counter", "{update}",
    "neuromorphic_synapse_updates_total", _HW_ATTRS,
    "loihi2_synapse_updates_total", "Synapse updates reported by the device",
)
HARDWARE_METRICS = (
    HW_POWER, HW_ENERGY, HW_STATUS, HW_ERRORS, HW_UTILIZATION, HW_MEMORY_USAGE,
    HW_MEMORY_LIMIT, HW_TEMPERATURE, SYSTEM_MEMORY_UTILIZATION, PROCESS_MEMORY_USAGE,
    PROCESS_CPU_UTILIZATION, NEUROMORPHIC_CORE_UTILIZATION, NEUROMORPHIC_SYNAPSE_UPDATES,
)

# --------------------------------------------------------------------------
# Structured log events (structured_logging.py): logger, ``event_type`` values
# and the log-record counter of ``setup_logging(include_metrics=True)``
# --------------------------------------------------------------------------
EVENTS_LOGGER = "spikeformer.events"
EVENT_TYPE = "event_type"
EVENT_TYPES = (
    "conversion_start", "conversion_end", "conversion_error",
    "compilation_start", "compilation_end", "compilation_error",
    "spike_activity", "hardware_error",
)
M_LOG_LEVEL = "level"
M_EVENT_TYPE = EVENT_TYPE

LOG_RECORDS = MetricSpec(
    "spikeformer.log.records", "counter", "{record}", "spikeformer_log_records_total",
    (M_LOG_LEVEL, M_EVENT_TYPE), "",
    "Log records seen by setup_logging(include_metrics=True), by level and event_type "
    "(unknown event types count as other, records without one as none)",
)
LOGGING_METRICS = (LOG_RECORDS,)

# --------------------------------------------------------------------------
# Benchmark runner (bench/): accuracy after conversion, latency, throughput,
# energy and sparsity per model x framework x target
# --------------------------------------------------------------------------
NETWORK_ANN, NETWORK_SNN = "ann", "snn"
FRAMEWORK_TORCH = "torch"  # the framework value of the source ANN's rows
# ``timesteps`` is a metric attribute only here, and only because the sweep is a
# small configured set: the runner refuses more values than this.
MAX_SWEEP_TIMESTEPS = 8
# Per-sample latency, 1 us ... 10 s.
LATENCY_BUCKETS_S = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Measured where the simulation ran: hardware_target is the torch device (cpu, cuda).
_BENCH_ATTRS = (M_MODEL_NAME, M_FRAMEWORK, M_HARDWARE_TARGET, M_NETWORK, M_TIMESTEPS)
_BENCH_SNN_ATTRS = (M_MODEL_NAME, M_FRAMEWORK, M_HARDWARE_TARGET, M_TIMESTEPS)  # SNN rows only

BENCHMARK_ACCURACY = MetricSpec(
    "spikeformer.benchmark.accuracy", "gauge", "1", "spikeformer_benchmark_accuracy",
    _BENCH_ATTRS, "BENCHMARK_ACCURACY",
    "Test-set accuracy of the ANN (network=ann) and of its conversion (network=snn): "
    "model accuracy after conversion",
)
BENCHMARK_ACCURACY_DROP = MetricSpec(
    "spikeformer.benchmark.accuracy_drop", "gauge", "1", "spikeformer_benchmark_accuracy_drop",
    _BENCH_SNN_ATTRS, "",
    "ANN accuracy minus SNN accuracy (negative when the SNN does better)",
)
BENCHMARK_LATENCY = MetricSpec(
    "spikeformer.benchmark.latency", "histogram", "s", "spikeformer_benchmark_latency_seconds",
    _BENCH_ATTRS, "BENCHMARK_LATENCY",
    "Wall time of one single-sample inference (all timesteps for an SNN)",
)
BENCHMARK_THROUGHPUT = MetricSpec(
    "spikeformer.benchmark.throughput", "gauge", "{sample}/s",
    "spikeformer_benchmark_throughput_per_second", _BENCH_ATTRS, "BENCHMARK_THROUGHPUT",
    "Samples per second over the test set in batches",
)
BENCHMARK_ENERGY = MetricSpec(
    "spikeformer.benchmark.energy_per_inference", "gauge", "mJ",
    "spikeformer_benchmark_energy_per_inference_mJ", _BENCH_ATTRS, "BENCHMARK_ENERGY",
    "Estimated energy per inference under the energy table named by hardware_target "
    "(same model as spike_compiler.energy_estimate)",
)
BENCHMARK_SPARSITY = MetricSpec(
    "spikeformer.benchmark.sparsity", "gauge", "1", "spikeformer_benchmark_sparsity",
    _BENCH_SNN_ATTRS, "",
    "Fraction of possible spikes not fired over the test set (the seeds' spike compression ratio)",
)
BENCHMARK_RUNS = MetricSpec(
    "spikeformer.benchmark.runs", "counter", "{run}", "spikeformer_benchmark_runs_total",
    (), "", "Finished benchmark runs, one-shot or periodic (failed cases: errors)",
)
BENCHMARK_ERRORS = MetricSpec(
    "spikeformer.benchmark.errors", "counter", "{error}", "spikeformer_benchmark_errors_total",
    (M_MODEL_NAME, M_FRAMEWORK, M_ERROR_TYPE), "",
    "Benchmark cases that failed (training, conversion or inference raised)",
)
BENCHMARK_METRICS: tuple[MetricSpec, ...] = (
    BENCHMARK_ACCURACY, BENCHMARK_ACCURACY_DROP, BENCHMARK_LATENCY, BENCHMARK_THROUGHPUT,
    BENCHMARK_ENERGY, BENCHMARK_SPARSITY, BENCHMARK_RUNS, BENCHMARK_ERRORS,
)


def all_metrics() -> tuple[MetricSpec, ...]:
    """Every metric the plugin can emit."""
    return (CORE_METRICS + MONITOR_METRICS + HARDWARE_METRICS + LOGGING_METRICS
            + BENCHMARK_METRICS)
