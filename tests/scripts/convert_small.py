"""A user script with no OpenTelemetry code: converts a small CNN, exports NIR."""

import sys

import sinabs
import torch

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from models import INPUT_SHAPE, nir_cnn  # noqa: E402

net = sinabs.from_model(nir_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
graph = sinabs.to_nir(net.spiking_model, torch.rand(1, *INPUT_SHAPE))
if len(sys.argv) > 1 and sys.argv[1] == "--seed-kit":
    import spike_transformer_compiler

    spike_transformer_compiler.SpikeCompiler(target="loihi3").compile(nir_cnn(), (1, *INPUT_SHAPE))
print("converted", type(net).__name__, len(graph.nodes), "nodes")
