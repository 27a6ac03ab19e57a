from dataclasses import dataclass

import torch.nn as nn

from .hardware import NeuromorphicDeployer
from .neurons import LifNeuron


@dataclass
class ConversionConfig:
    timesteps: int = 32
    threshold: float = 1.0


class ThresholdCalibrator:
    def __init__(self, config):
        self.config = config

    def calibrate_model(self, model, calibration_loader):
        for data, _ in calibration_loader:
            model(data)
        return {"layers": 1}


class SpikeformerConverter:
    def __init__(self, config=None):
        self.config = config or ConversionConfig()
        self.calibrator = ThresholdCalibrator(self.config)

    def convert(self, model, calibration_data=None):
        if calibration_data is not None:
            self.calibrator.calibrate_model(model, calibration_data)
        layers = [LifNeuron(self.config.threshold) if isinstance(m, nn.ReLU) else m
                  for m in model]
        return nn.Sequential(*layers)


class ConversionPipeline:
    """Convert, then compile for the target hardware."""

    def __init__(self, target="loihi2", timesteps=16):
        self.target = target
        self.config = ConversionConfig(timesteps=timesteps)

    def convert(self, model, calibration_data=None):
        snn = SpikeformerConverter(self.config).convert(model, calibration_data)
        NeuromorphicDeployer(self.target).backend.compile(snn)
        return snn
