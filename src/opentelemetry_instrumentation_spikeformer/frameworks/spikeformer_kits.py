"""The Spikeformer kits of the observability design (``spikeformer`` and
``spike_transformer_compiler``, not on PyPI): their converters, calibrator,
backends and compiler, and the kit's ``LifNeuron``/``AdLifNeuron``
((batch, time, ...) in and out, state in ``membrane_potential``)."""

from __future__ import annotations

from ..core.attributes import COMPILATION, CONVERSION, DEPLOYMENT
from ..core.targets import CALIBRATION, Target
from .base import BT, Framework, NeuronRule

_TIMESTEPS = "self.config.timesteps or self.timesteps"

FRAMEWORK = Framework(
    name="spikeformer",
    packages=("spikeformer", "spike_transformer_compiler"),
    targets=(
        Target("spikeformer", "SpikeformerConverter.convert", CONVERSION, "spikeformer",
               model="model or #0", timesteps=_TIMESTEPS,
               hardware="target or hardware_target or self.config.target_hardware"),
        Target("spikeformer.conversion", "ConversionPipeline.convert", CONVERSION, "spikeformer",
               model="model or #0", timesteps=_TIMESTEPS,
               hardware="target or hardware_target or self.target or self.config.target_hardware"),
        Target("spikeformer.conversion", "ThresholdCalibrator.calibrate_model", role=CALIBRATION,
               framework="spikeformer", samples="calibration_loader|samples or #1|samples"),
        Target("spikeformer.hardware", "NeuromorphicBackend.compile", COMPILATION, "spikeformer",
               model="model or #0", hardware="self.config.platform or self.platform",
               subclasses=True),
        Target("spikeformer.hardware", "NeuromorphicBackend.deploy", DEPLOYMENT, "spikeformer",
               model="#0", hardware="self.config.platform or self.platform", subclasses=True),
        Target("spike_transformer_compiler.compiler", "SpikeCompiler.compile", COMPILATION,
               "spike_transformer_compiler", model="model or #0", hardware="self.target",
               timesteps="time_steps or self.time_steps"),
    ),
    neurons=(
        NeuronRule("LifNeuron", BT, "membrane_potential", True),
        NeuronRule("AdLifNeuron", BT, "membrane_potential", True),
    ),
    # The chips the design's kits deploy to.
    hardware=("loihi", "loihi2", "loihi3", "spinnaker", "spinnaker2", "akida", "truenorth",
              "xylo", "xyloaudio3", "xyloimu"),
)
