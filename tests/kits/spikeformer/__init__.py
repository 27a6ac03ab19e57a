"""The Spikeformer kit's API (observability design): SpikeformerConverter, ConversionPipeline, NeuromorphicDeployer, LifNeuron."""
from .conversion import ConversionPipeline, SpikeformerConverter
from .hardware import NeuromorphicDeployer
from .neurons import LifNeuron

__all__ = ["ConversionPipeline", "SpikeformerConverter", "NeuromorphicDeployer", "LifNeuron"]
