"""Metric specs of the spike monitor (names, kinds, units, attributes)."""

from __future__ import annotations

from ..core import attributes as a
from ..core.metrics import MetricSpec

_LAYER_ATTRS = (a.M_MODEL_NAME, a.M_LAYER_NAME, a.M_NEURON_TYPE)
_ENERGY_ATTRS = (a.M_MODEL_NAME, a.M_HARDWARE_TARGET)

# Membrane potential buckets, in the neuron's own units (thresholds are
# usually 1.0 after conversion). The SDK rejects negative histogram values, so
# values below 0 are recorded as 0: the first bucket reads "v <= 0".
MEMBRANE_BUCKETS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 5.0)

NEURAL_SPIKES = MetricSpec(
    "neural.spikes", "observable_counter", "{spike}", "neural_spikes_total",
    _LAYER_ATTRS, "Events per layer: non-zero outputs (a multi-spike neuron's count; "
    "signed and graded outputs count their non-zeros, their size is in "
    "neural.spike_magnitude); no timestep label", "neural_spikes_total",
)
NEURAL_SPIKE_MAGNITUDE = MetricSpec(
    "neural.spike_magnitude", "observable_counter", "1", "neural_spike_magnitude_total",
    _LAYER_ATTRS, "Sum of |output| of layers whose events carry a sign or an amplitude "
    "(signed, scaled and graded outputs; binary and count layers report none)",
)
NEURAL_SYNOPS = MetricSpec(
    "neural.synops", "observable_counter", "{synop}", "neural_synops_total",
    (*_LAYER_ATTRS, a.M_SYNOP_INPUT), "Synaptic operations charged to the layer that fired: "
    "every event x the synapses it reaches along the dataflow (all consumers, attention "
    "products, reductions into neurons). synop_input=spikes: events as emitted (equal to "
    "spikingjelly's SynOpCounter plus attention adds); spike_sums: events after a sum, mean "
    "or average pooling (MACs to SynOpCounter); graded: events with an amplitude",
)
NEURAL_FIRING_RATE = MetricSpec(
    "neural.firing_rate", "observable_gauge", "{spike}/{neuron}/{timestep}",
    "neural_firing_rate", _LAYER_ATTRS,
    "Spikes per neuron per timestep over the last collection interval",
)
SPIKE_RATE = MetricSpec(
    "spike.rate", "observable_gauge", "Hz", "spike_rate_hertz", _LAYER_ATTRS,
    "Per-neuron firing rate in Hz (timestep length configurable)", "spike_rate_hz",
)
MEMBRANE_POTENTIAL = MetricSpec(
    "membrane_potential", "histogram", "1", "membrane_potential", _LAYER_ATTRS,
    "Membrane potential distribution per layer (not per neuron)", "membrane_potential",
    MEMBRANE_BUCKETS,
)
ENERGY_ESTIMATE = MetricSpec(
    "spike_compiler.energy_estimate", "observable_gauge", "mJ",
    "spike_compiler_energy_estimate_mJ", _ENERGY_ATTRS, "Estimated compute energy per "
    "inference, the papers' method (E_MAC x encoding MACs + E_AC x SOPs ...) under the table "
    "named by hardware_target",
    "spike_compiler_energy_estimate_mj",
)
ENERGY_EFFICIENCY = MetricSpec(
    "energy_efficiency_ratio", "observable_gauge", "1", "energy_efficiency_ratio",
    _ENERGY_ATTRS, "ANN energy / SNN energy for the same inference, compute only, both priced "
    "by the same table (> 1: the SNN is cheaper; tables without a MAC report none)",
    "energy_efficiency_ratio",
)
ENERGY_MEMORY_AWARE = MetricSpec(
    "spike_compiler.energy_estimate_memory_aware", "observable_gauge", "mJ",
    "spike_compiler_energy_estimate_memory_aware_mJ", (a.M_MODEL_NAME,),
    "Energy per inference with memory accesses (Lemaire et al. 2022, as spikingjelly's "
    "LemaireEnergyProfiler computes it: 45 nm SRAM reads/writes + int32 ops)",
)
MONITOR_METRICS = (
    NEURAL_SPIKES, NEURAL_SPIKE_MAGNITUDE, NEURAL_SYNOPS, NEURAL_FIRING_RATE, SPIKE_RATE,
    MEMBRANE_POTENTIAL, ENERGY_ESTIMATE, ENERGY_EFFICIENCY, ENERGY_MEMORY_AWARE,
)
