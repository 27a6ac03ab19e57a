from .compiler import CompiledModel, SpikeCompiler

__all__ = ["SpikeCompiler", "CompiledModel"]
