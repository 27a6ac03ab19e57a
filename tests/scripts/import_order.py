"""Run one import-order scenario in a fresh interpreter; print a JSON result."""

import json
import sys

from conftest import Telemetry
from models import INPUT_SHAPE, tiny_cnn
from opentelemetry_instrumentation_spikeformer import SpikeformerInstrumentor
from opentelemetry_instrumentation_spikeformer.core.patching import SpikeformerWrapper

scenario = sys.argv[1]
tel = Telemetry()
inst = SpikeformerInstrumentor()


def instrument():
    inst.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)


torch_by_instrument = None
if scenario == "import-then-instrument":
    import sinabs  # noqa: F401
    instrument()
else:
    instrument()
    torch_by_instrument = "torch" in sys.modules
    if scenario == "uninstrument-before-import":
        inst.uninstrument()
    elif scenario == "reinstrument-before-import":
        inst.uninstrument()
        instrument()
    import sinabs  # noqa: F401

sinabs.from_model(tiny_cnn(), input_shape=INPUT_SHAPE, batch_size=1)
print(json.dumps({
    "spans": len(tel.spans("spikeformer.convert sinabs")),
    "wrapped": isinstance(sinabs.from_model, SpikeformerWrapper)
    and isinstance(sys.modules["sinabs.from_torch"].from_model, SpikeformerWrapper),
    "torch_imported_by_instrument": bool(torch_by_instrument),
}))
