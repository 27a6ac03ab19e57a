"""A user script for the OTLP logs test: one sinabs conversion that works, one
that fails, one hardware error. ``--setup-logging`` calls setup_logging() in
code (the seeds' way) instead of relying on OTEL_PYTHON_SPIKEFORMER_LOG_FORMAT."""

import sys

import sinabs

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from models import INPUT_SHAPE, tiny_cnn  # noqa: E402

from opentelemetry_instrumentation_spikeformer.structured_logging import (  # noqa: E402
    NeuromorphicLogger,
    setup_logging,
)

if "--setup-logging" in sys.argv:
    setup_logging(format="json")
sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
try:
    sinabs.from_model(tiny_cnn(), input_shape=(3, *INPUT_SHAPE[1:]), batch_size=1)
except RuntimeError:
    pass
NeuromorphicLogger().log_hardware_error("loihi2", TimeoutError("probe timed out"))
print("done")
