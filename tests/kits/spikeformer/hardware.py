from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class HardwareConfig:
    platform: str
    max_neurons: int = 10_000


class NeuromorphicBackend(ABC):
    def __init__(self, config):
        self.config = config

    @abstractmethod
    def compile(self, model):
        ...

    @abstractmethod
    def deploy(self, compiled_model):
        ...


class Loihi2Backend(NeuromorphicBackend):
    def compile(self, model):
        return {"type": "loihi2", "params": sum(p.numel() for p in model.parameters())}

    def deploy(self, compiled_model):
        return {"deployed": compiled_model}


class SpiNNakerBackend(NeuromorphicBackend):
    def compile(self, model):
        neurons = sum(p.numel() for p in model.parameters())
        if neurons > self.config.max_neurons:
            raise MemoryError(f"{neurons} neurons exceed the board's {self.config.max_neurons}")
        return {"type": "spinnaker"}

    def deploy(self, compiled_model):
        return {"deployed": compiled_model}


class NeuromorphicDeployer:
    def __init__(self, platform="loihi2", **kwargs):
        self.platform = platform
        self.config = HardwareConfig(platform=platform, **kwargs)
        self.backend = {"loihi2": Loihi2Backend, "spinnaker": SpiNNakerBackend}[platform](self.config)

    def deploy_model(self, model):
        return self.backend.deploy(self.backend.compile(model))
