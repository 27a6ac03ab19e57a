"""A user script for the OTLP logs test: setup_logging() (JSON on stderr, level
INFO), one sinabs conversion that works, one that fails, one hardware error."""

import sys

import sinabs

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from models import INPUT_SHAPE, tiny_cnn  # noqa: E402

from opentelemetry_instrumentation_spikeformer.structured_logging import (  # noqa: E402
    NeuromorphicLogger,
    setup_logging,
)

setup_logging(format="json")
sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
try:
    sinabs.from_model(tiny_cnn(), input_shape=(3, *INPUT_SHAPE[1:]), batch_size=1)
except RuntimeError:
    pass
NeuromorphicLogger().log_hardware_error("loihi2", TimeoutError("probe timed out"))
print("done")
